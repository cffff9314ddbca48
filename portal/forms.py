from django import forms
from django.conf import settings
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _

from communications.models import FeedbackTopic, UnsubscribeReason
from loyalty.models import CustomFieldKind, Gender
from portal.services import auth


class LoginForm(forms.Form):
    login = forms.CharField(
        label=_("Phone number or email"),
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "username", "inputmode": "email", "autofocus": True}),
    )

    def clean_login(self):
        try:
            return auth.address_parse(self.cleaned_data["login"])
        except forms.ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None


class PasswordLoginForm(LoginForm):
    password = forms.CharField(
        label=_("Password"), widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code"),
        max_length=12,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": True,
                "pattern": "[0-9 ]*",
            }
        ),
    )


class RegisterForm(LoginForm):
    first_name = forms.CharField(label=_("First name"), max_length=100)
    last_name = forms.CharField(label=_("Last name"), max_length=100, required=False)
    birth_date = forms.DateField(
        label=_("Birth date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    card_number = forms.CharField(
        label=_("Card number"),
        max_length=32,
        required=False,
        help_text=_("If you already have the program's card, enter its number to keep its bonuses."),
    )
    consent_sms = forms.BooleanField(label=_("SMS"), required=False)
    consent_email = forms.BooleanField(label=_("Email"), required=False)
    consent_push = forms.BooleanField(label=_("Push notifications"), required=False)
    consent_viber = forms.BooleanField(label=_("Viber"), required=False)
    rules = forms.BooleanField(label=_("I accept the rules of the loyalty program"))

    def consents(self) -> dict[str, bool]:
        return {c: bool(self.cleaned_data.get(f"consent_{c}")) for c in ("sms", "email", "push", "viber")}


class ProfileForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=100)
    middle_name = forms.CharField(label=_("Middle name"), max_length=100, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=100, required=False)
    gender = forms.ChoiceField(label=_("Gender"), choices=[("", "—"), *Gender.choices], required=False)
    birth_date = forms.DateField(
        label=_("Birth date"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    city = forms.CharField(label=_("City"), max_length=128, required=False)
    language = forms.ChoiceField(
        label=_("Language"),
        # each language by its own name, as a reader looking for theirs expects
        choices=[
            (code, get_language_info(code)["name_local"].capitalize()) for code, _name in settings.LANGUAGES
        ],
    )


class ContactForm(LoginForm):
    login = forms.CharField(label=_("New phone number or email"), max_length=254)


class CardForm(forms.Form):
    card_number = forms.CharField(label=_("Card number"), max_length=32)


class PasswordForm(forms.Form):
    password = forms.CharField(
        label=_("New password"), widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )


def questionnaire_form(fields, initial: dict, data=None) -> forms.Form:
    """A form built from the managed field set."""
    form = forms.Form(data=data, initial=initial)
    for field in fields:
        label, required = field.label, field.required
        match field.kind:
            case CustomFieldKind.NUMBER:
                form.fields[field.code] = forms.DecimalField(label=label, required=required)
            case CustomFieldKind.DATE:
                form.fields[field.code] = forms.DateField(
                    label=label, required=required, widget=forms.DateInput(attrs={"type": "date"})
                )
            case CustomFieldKind.BOOLEAN:
                form.fields[field.code] = forms.TypedChoiceField(
                    label=label,
                    required=required,
                    choices=[("", "—"), ("true", _("Yes")), ("false", _("No"))],
                    coerce=lambda v: v == "true",
                    empty_value=None,
                )
            case CustomFieldKind.CHOICE:
                form.fields[field.code] = forms.ChoiceField(
                    label=label, required=required, choices=[("", "—"), *[(c, c) for c in field.choices]]
                )
            case _:
                form.fields[field.code] = forms.CharField(label=label, required=required, max_length=500)
    return form


class FeedbackForm(forms.Form):
    topic = forms.ModelChoiceField(
        label=_("Topic"), queryset=FeedbackTopic.objects.filter(active=True), required=False
    )
    subject = forms.CharField(label=_("Subject"), max_length=200)
    text = forms.CharField(label=_("Message"), widget=forms.Textarea(attrs={"rows": 6}), max_length=5000)
    attachment = forms.FileField(label=_("Attachment"), required=False)


class ReplyForm(forms.Form):
    text = forms.CharField(label=_("Message"), widget=forms.Textarea(attrs={"rows": 4}), max_length=5000)
    attachment = forms.FileField(label=_("Attachment"), required=False)


class UnsubscribeReasonForm(forms.Form):
    reason = forms.ModelChoiceField(
        label=_("Why do you unsubscribe?"),
        queryset=UnsubscribeReason.objects.filter(active=True),
        required=False,
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(label=_("Comment"), required=False, max_length=500)
