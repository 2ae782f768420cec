"""The daily limits on the submission port: with 2 messages per alias and 3
per sender domain, the alias' third MAIL FROM of the day gets 450 4.7.1,
and so does a second alias of the same domain once the domain sent 3.

usage: submission_limit.py PORT_465 USER PASSWORD USER2 PASSWORD2 RCPT
"""
import smtplib
import sys

from checks import Checks, insecure_tls

port, user, password, user2, password2, rcpt = sys.argv[1:7]
c = Checks("submission_limit")


def refused(s, sender, subject, label, wording):
    try:
        s.sendmail(sender, [rcpt], f"From: {sender}\r\nSubject: {subject}\r\n\r\nhi\r\n")
        c(label, False, "accepted")
    except smtplib.SMTPSenderRefused as e:
        c(label, e.smtp_code == 450 and e.smtp_error.startswith(b"4.7.1")
          and wording in e.smtp_error, e)


with smtplib.SMTP_SSL("127.0.0.1", int(port), timeout=30, context=insecure_tls()) as s:
    s.login(user, password)
    for i in range(2):
        s.sendmail(user, [rcpt], f"From: {user}\r\nSubject: limit {i}\r\n\r\nhi\r\n")
        c(f"message {i} accepted", True)
    refused(s, user, "limit 2", "third message refused with 450 4.7.1", user.encode())
with smtplib.SMTP_SSL("127.0.0.1", int(port), timeout=30, context=insecure_tls()) as s:
    s.login(user2, password2)
    s.sendmail(user2, [rcpt], f"From: {user2}\r\nSubject: limit 3\r\n\r\nhi\r\n")
    c("the domain's third message accepted", True)
    refused(s, user2, "limit 4", "the domain's fourth refused with 450 4.7.1", b"for the domain")
c.finish()
