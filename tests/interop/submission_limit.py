"""The daily limit on the submission port: with a limit of 2 messages per
alias, the third MAIL FROM of the day gets 450 4.7.1.

usage: submission_limit.py PORT_465 USER PASSWORD RCPT
"""
import smtplib
import sys

from checks import Checks, insecure_tls

port, user, password, rcpt = sys.argv[1:5]
c = Checks("submission_limit")
with smtplib.SMTP_SSL("127.0.0.1", int(port), timeout=30, context=insecure_tls()) as s:
    s.login(user, password)
    for i in range(2):
        s.sendmail(user, [rcpt], f"From: {user}\r\nSubject: limit {i}\r\n\r\nhi\r\n")
        c(f"message {i} accepted", True)
    try:
        s.sendmail(user, [rcpt], f"From: {user}\r\nSubject: limit 2\r\n\r\nhi\r\n")
        c("third message refused", False, "accepted")
    except smtplib.SMTPSenderRefused as e:
        c("third message refused with 450 4.7.1",
          e.smtp_code == 450 and e.smtp_error.startswith(b"4.7.1"), e)
c.finish()
