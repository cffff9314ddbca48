"""A member writes to support, an operator answers, the member is told and writes back."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from communications.models import (
    Feedback,
    FeedbackAuthor,
    FeedbackStatus,
    FeedbackTopic,
    Message,
    Origin,
    Purpose,
)
from communications.services.feedback import (
    feedback_answer,
    feedback_list,
    feedback_of,
    feedback_open,
    feedback_reply,
    feedback_set_status,
)
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def topic(db):
    return FeedbackTopic.objects.create(name="Bonuses", order=1)


@pytest.fixture
def operator(db):
    return User.objects.create_user("operator", is_staff=True)


@pytest.fixture
def gateways(make_gateway):
    make_gateway("file_email", name="Mail files", sender="Shop <shop@example.com>")
    make_gateway("file_sms", name="SMS files")


def _thread(member, topic, **kwargs) -> Feedback:
    return feedback_open(
        member=member, topic=topic, subject="Where are my bonuses?", text="I bought coffee.", **kwargs
    )


def test_a_member_opens_a_thread_that_waits_for_an_operator(make_member, topic):
    member = make_member()
    # when
    feedback = _thread(
        member, topic, attachment=SimpleUploadedFile("Receipt 17.PNG", b"\x89PNG...", "image/png")
    )
    # then: one message from the member; the file is kept under a random name, its own name in the row
    assert feedback.status == FeedbackStatus.NEW and feedback.assigned_to is None
    (message,) = feedback.messages.all()
    assert message.author == FeedbackAuthor.MEMBER and message.text == "I bought coffee."
    assert message.attachment_name == "Receipt 17.PNG"
    assert "Receipt" not in message.attachment.name and message.attachment.name.endswith(".png")
    assert message.attachment.read() == b"\x89PNG..."
    assert feedback_list(member) == [feedback]


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [({"subject": "  "}, "subject"), ({"text": ""}, "text"), ({"text": "x" * 5001}, "text")],
)
def test_a_thread_without_a_subject_or_text_is_refused_on_its_field(make_member, topic, fields, error_field):
    data = {"subject": "Question", "text": "Hello", **fields}
    with pytest.raises(ValidationError) as caught:
        feedback_open(member=make_member(), topic=topic, **data)
    assert error_field in caught.value.message_dict
    assert not Feedback.objects.exists()


def test_an_inactive_topic_is_refused(make_member, topic):
    topic.active = False
    topic.save()
    with pytest.raises(ValidationError) as caught:
        _thread(make_member(), topic)
    assert "topic" in caught.value.message_dict


@pytest.mark.parametrize(
    ("name", "size", "says"),
    [("virus.exe", 10, ".exe"), ("photo.jpg", 2048, "too large")],
)
def test_an_attachment_of_a_wrong_type_or_size_is_refused_on_its_field(
    make_member, topic, settings, name, size, says
):
    settings.PORTAL = {**settings.PORTAL, "ATTACHMENT_MAX_BYTES": 1024}
    upload = SimpleUploadedFile(name, b"x" * size)
    # when / then: refused on the attachment field, nothing stored
    with pytest.raises(ValidationError) as caught:
        _thread(make_member(), topic, attachment=upload)
    assert says in " ".join(caught.value.message_dict["attachment"])
    assert not Feedback.objects.exists()


def test_an_answer_queues_one_service_message_to_the_members_email(make_member, topic, operator, gateways):
    member = make_member(email="anna@example.com")
    feedback = _thread(member, topic)
    # when
    answer = feedback_answer(feedback=feedback, operator=operator, text="Your bonuses arrive tomorrow.")
    # then: answered, the thread is the operator's, and the member gets one email
    feedback.refresh_from_db()
    assert feedback.status == FeedbackStatus.ANSWERED and feedback.assigned_to == operator
    assert answer.author == FeedbackAuthor.OPERATOR and answer.operator == operator
    (message,) = Message.objects.all()
    assert (message.member, message.channel, message.address) == (member, "email", "anna@example.com")
    assert message.purpose == Purpose.SERVICE and message.origin == Origin.TRANSACTIONAL
    assert "Where are my bonuses?" in message.content["subject"]


def test_a_member_without_email_is_told_by_sms(topic, operator, gateways):
    member = factories.MemberFactory(email="")
    feedback = _thread(member, topic)
    # when
    feedback_answer(feedback=feedback, operator=operator, text="Done.")
    # then
    (message,) = Message.objects.all()
    assert (message.channel, message.address) == ("sms", member.phone)
    assert "Where are my bonuses?" in message.content["text"]


def test_a_member_whose_email_bounced_is_told_by_sms(topic, operator, gateways):
    from loyalty.models import ContactStatus

    member = factories.MemberFactory(email="gone@example.com", email_status=ContactStatus.INVALID)
    feedback = _thread(member, topic)
    feedback_answer(feedback=feedback, operator=operator, text="Done.")
    (message,) = Message.objects.all()
    assert (message.channel, message.address) == ("sms", member.phone)


def test_each_answer_is_its_own_notification(make_member, topic, operator, gateways):
    feedback = _thread(make_member(), topic)
    feedback_answer(feedback=feedback, operator=operator, text="First.")
    feedback_answer(feedback=feedback, operator=operator, text="Second.")
    assert Message.objects.count() == 2


def test_a_reply_after_the_answer_waits_for_the_operator_again(make_member, topic, operator, gateways):
    member = make_member()
    feedback = _thread(member, topic)
    feedback_answer(feedback=feedback, operator=operator, text="Which shop?")
    # when
    feedback_reply(feedback=feedback, member=member, text="The one on Lenina street.")
    # then: assigned already, so straight back in progress, with the whole thread in order
    feedback = feedback_of(member, feedback.pk)
    assert feedback.status == FeedbackStatus.IN_PROGRESS
    assert [m.author for m in feedback.messages.all()] == ["member", "operator", "member"]


def test_an_unassigned_thread_goes_back_to_new_on_a_reply(make_member, topic):
    member = make_member()
    feedback = _thread(member, topic)
    feedback_set_status(feedback=feedback, status=FeedbackStatus.ANSWERED)
    feedback_reply(feedback=feedback, member=member, text="Anyone?")
    feedback.refresh_from_db()
    assert feedback.status == FeedbackStatus.NEW


def test_a_closed_thread_refuses_replies(make_member, topic, operator, gateways):
    member = make_member()
    feedback = _thread(member, topic)
    feedback_answer(feedback=feedback, operator=operator, text="Solved.", close=True)
    feedback.refresh_from_db()
    assert feedback.status == FeedbackStatus.CLOSED
    # when / then
    with pytest.raises(ValidationError) as caught:
        feedback_reply(feedback=feedback, member=member, text="One more thing")
    assert "text" in caught.value.message_dict
    assert feedback.messages.count() == 2


def test_another_member_cannot_write_into_a_thread(make_member, topic):
    owner, stranger = make_member(), make_member()
    feedback = _thread(owner, topic)
    with pytest.raises(Feedback.DoesNotExist):
        feedback_reply(feedback=feedback, member=stranger, text="Hi")
    assert feedback.messages.count() == 1
    assert feedback_of(stranger, feedback.pk) is None and feedback_list(stranger) == []


def test_taking_in_progress_assigns_the_operator_who_takes_it(make_member, topic, operator):
    feedback = _thread(make_member(), topic)
    # when
    feedback_set_status(feedback=feedback, status=FeedbackStatus.IN_PROGRESS, operator=operator)
    # then
    feedback.refresh_from_db()
    assert feedback.status == FeedbackStatus.IN_PROGRESS and feedback.assigned_to == operator
    other = User.objects.create_user("other", is_staff=True)
    feedback_set_status(feedback=feedback, status=FeedbackStatus.IN_PROGRESS, operator=other)
    feedback.refresh_from_db()
    assert feedback.assigned_to == other


def test_an_unknown_status_is_refused(make_member, topic):
    feedback = _thread(make_member(), topic)
    with pytest.raises(ValidationError):
        feedback_set_status(feedback=feedback, status="lost")
    feedback.refresh_from_db()
    assert feedback.status == FeedbackStatus.NEW
