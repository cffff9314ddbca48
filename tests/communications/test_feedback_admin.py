"""A contact-center operator reads a member's thread in the back office, answers it,
takes it in progress, closes and reopens it, and downloads what the member attached."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from communications.models import Feedback, FeedbackAuthor, FeedbackStatus, FeedbackTopic, Message
from communications.services.feedback import feedback_open
from loyalty import roles

pytestmark = pytest.mark.django_db


def login_as(client, role: str) -> User:
    user = User.objects.create_user(username=role.lower().replace(" ", "-"), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.fixture
def topic(db):
    return FeedbackTopic.objects.create(name="Bonuses", order=1)


@pytest.fixture
def thread(make_member, make_gateway, topic, noon):
    make_gateway("file_email", name="Mail files", sender="Shop <shop@example.com>")
    member = make_member(email="anna@example.com", phone="+79161234567")
    return feedback_open(
        member=member,
        topic=topic,
        subject="Where are my bonuses?",
        text="I bought coffee <b>yesterday</b>.",
        attachment=SimpleUploadedFile("Чек 17.png", b"\x89PNG-receipt", "image/png"),
    )


def change_url(feedback: Feedback) -> str:
    return reverse("admin:communications_feedback_change", args=[feedback.pk])


def answer_data(topic, **extra) -> dict:
    return {"topic": topic.pk, "assigned_to": "", "answer": "", **extra}


def test_an_operator_answers_a_thread_and_the_member_is_told(client, thread, topic):
    operator = login_as(client, roles.OPERATOR)
    # given: the thread page shows what the member wrote, not as an editable field
    page = client.get(change_url(thread))
    assert page.status_code == 200
    content = page.content.decode()
    assert 'enctype="multipart/form-data"' in content and 'name="answer_attachment"' in content
    assert "I bought coffee &lt;b&gt;yesterday&lt;/b&gt;." in content
    assert 'name="text"' not in content and 'name="subject"' not in content
    # when
    response = client.post(
        change_url(thread), answer_data(topic, answer="They arrive tomorrow.", _answer="1")
    )
    # then: back on the thread; answered, the operator's message stored, one email queued
    assert response.status_code == 302 and response["Location"] == change_url(thread)
    thread.refresh_from_db()
    assert thread.status == FeedbackStatus.ANSWERED and thread.assigned_to == operator
    answer = thread.messages.get(author=FeedbackAuthor.OPERATOR)
    assert answer.text == "They arrive tomorrow." and answer.operator == operator
    (message,) = Message.objects.all()
    assert message.member == thread.member and message.channel == "email"
    assert "They arrive tomorrow." in client.get(change_url(thread)).content.decode()


def test_answer_and_close_with_a_file(client, thread, topic):
    login_as(client, roles.OPERATOR)
    upload = SimpleUploadedFile("rules.pdf", b"%PDF-1.4", "application/pdf")
    response = client.post(
        change_url(thread),
        answer_data(topic, answer="See the rules.", answer_attachment=upload, answer_close="on", _answer="1"),
    )
    assert response.status_code == 302
    thread.refresh_from_db()
    assert thread.status == FeedbackStatus.CLOSED
    answer = thread.messages.get(author=FeedbackAuthor.OPERATOR)
    assert answer.attachment_name == "rules.pdf" and answer.attachment.read() == b"%PDF-1.4"


def test_a_wrong_file_is_refused_on_its_field_and_the_answer_is_kept(client, thread, topic):
    login_as(client, roles.OPERATOR)
    upload = SimpleUploadedFile("script.html", b"<script>", "text/html")
    page = client.post(
        change_url(thread), answer_data(topic, answer="Look at this.", answer_attachment=upload, _answer="1")
    )
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert list(form.errors) == ["answer_attachment"]
    assert "Look at this." in page.content.decode()
    thread.refresh_from_db()
    assert thread.status == FeedbackStatus.NEW and thread.messages.count() == 1
    assert not Message.objects.exists()


def test_sending_an_empty_answer_asks_for_the_text(client, thread, topic):
    login_as(client, roles.OPERATOR)
    page = client.post(change_url(thread), answer_data(topic, _answer="1"))
    assert page.status_code == 200 and "answer" in page.context["adminform"].form.errors
    assert thread.messages.count() == 1


def test_saving_the_topic_alone_sends_nothing(client, thread, topic):
    login_as(client, roles.OPERATOR)
    other = FeedbackTopic.objects.create(name="Card")
    response = client.post(change_url(thread), answer_data(other, _continue="1"))
    assert response.status_code == 302
    thread.refresh_from_db()
    assert thread.topic == other and thread.status == FeedbackStatus.NEW
    assert thread.messages.count() == 1 and not Message.objects.exists()


def test_take_in_progress_close_and_reopen(client, thread):
    operator = login_as(client, roles.OPERATOR)

    def do(action):
        return client.post(reverse("admin:communications_feedback_status", args=[thread.pk, action]))

    page = client.get(change_url(thread)).content.decode()
    assert 'form="feedback-take-form"' in page and 'form="feedback-reopen-form"' not in page
    # when: taken
    assert do("take").status_code == 302
    thread.refresh_from_db()
    assert thread.status == FeedbackStatus.IN_PROGRESS and thread.assigned_to == operator
    # when: closed, then reopened
    do("close")
    thread.refresh_from_db()
    assert thread.status == FeedbackStatus.CLOSED
    page = client.get(change_url(thread)).content.decode()
    assert 'form="feedback-reopen-form"' in page and 'form="feedback-close-form"' not in page
    do("reopen")
    thread.refresh_from_db()
    assert thread.status == FeedbackStatus.IN_PROGRESS
    # and a link is not a way to change the status
    get = client.get(reverse("admin:communications_feedback_status", args=[thread.pk, "close"]))
    assert get.status_code == 405


def test_a_viewer_without_change_rights_reads_but_cannot_answer(client, thread, topic):
    login_as(client, roles.ANALYST)
    page = client.get(change_url(thread))
    assert page.status_code == 200 and "I bought coffee" in page.content.decode()
    assert b'name="answer"' not in page.content and b"feedback-take-form" not in page.content
    assert (
        client.post(reverse("admin:communications_feedback_status", args=[thread.pk, "take"])).status_code
        == 403
    )
    assert client.post(change_url(thread), answer_data(topic, answer="x", _answer="1")).status_code == 403
    thread.refresh_from_db()
    assert thread.status == FeedbackStatus.NEW and thread.messages.count() == 1


def test_attachments_go_to_staff_allowed_to_view_feedback(client, thread):
    url = reverse("admin:communications_feedback_attachment", args=[thread.pk, thread.messages.get().pk])
    # an operator gets the file under the member's own name
    login_as(client, roles.OPERATOR)
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x89PNG-receipt"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;") and "%D0%A7%D0%B5%D0%BA%2017.png" in disposition
    assert url in client.get(change_url(thread)).content.decode()
    # staff without the permission are refused, strangers are sent to sign in
    client.logout()
    login_as(client, roles.DESIGNER)
    assert client.get(url).status_code == 403
    client.logout()
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_attachment_is_only_reached_through_its_own_thread(client, thread, make_member, topic):
    other = feedback_open(member=make_member(), topic=topic, subject="Other", text="Hello")
    login_as(client, roles.OPERATOR)
    url = reverse("admin:communications_feedback_attachment", args=[other.pk, thread.messages.get().pk])
    assert client.get(url).status_code == 404


def test_thread_times_are_in_the_viewers_time_zone(client, thread):
    # given: the message came at 09:00 UTC; the viewer is in Vladivostok (UTC+10)
    login_as(client, roles.OPERATOR)
    client.cookies["tz"] = "Asia/Vladivostok"
    page = client.get(change_url(thread)).content.decode()
    assert "2026-11-23 19:00" in page
    client.cookies["tz"] = "Europe/London"
    assert "2026-11-23 09:00" in client.get(change_url(thread)).content.decode()


def test_the_list_counts_new_threads_and_finds_them_by_phone(client, thread, make_member, topic):
    feedback_open(member=make_member(), topic=topic, subject="Card lost", text="Help")
    operator = login_as(client, roles.OPERATOR)
    url = reverse("admin:communications_feedback_changelist")
    page = client.get(url)
    assert page.status_code == 200 and "Feedback: 2 new" in page.content.decode()
    assert reverse("admin:loyalty_member_change", args=[thread.member_id]) in page.content.decode()
    # when: searched by the phone as a member would dictate it
    found = client.get(url, {"q": "8 (916) 123-45-67"})
    assert list(found.context["cl"].result_list) == [thread]
    # and "waiting for an operator" leaves out the answered ones
    Feedback.objects.filter(pk=thread.pk).update(status=FeedbackStatus.ANSWERED)
    waiting = client.get(url, {"status": "open"})
    assert [f.subject for f in waiting.context["cl"].result_list] == ["Card lost"]
    assert "Feedback: 1 new" in waiting.content.decode()
    # and "assigned to me" shows the operator's own threads
    Feedback.objects.filter(pk=thread.pk).update(assigned_to=operator)
    mine = client.get(url, {"assigned": "me"})
    assert list(mine.context["cl"].result_list) == [thread]


def test_threads_cannot_be_added_in_the_back_office(client, db):
    login_as(client, roles.ADMINISTRATOR)
    assert client.get(reverse("admin:communications_feedback_add")).status_code == 403
