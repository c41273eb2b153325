#!/usr/bin/env python3
"""Generates the labelled report corpus under corpus/bounces, corpus/arf and corpus/autoreplies.

Every template below was written by hand from the documented / commonly seen layout of each MTA's
bounce (RFC 3464 DSNs and the vendor text formats). Variation comes from a fixed-seed choice of
recipient, diagnostic, remote host, line endings, token placement and how the original comes back,
so re-running the script reproduces the committed files byte for byte.

Run from this directory:  python3 gen_reports.py
Labels: one labels.tsv per folder: file, expected kind, expected recipient, expected class, token.
The expected class is what an operator reading the diagnostic would choose (SPEC §2.7), not what
the code currently outputs; disagreements show up as accuracy below 100 %.
"""
import base64
import os
import random
import shutil

R = random.Random(4242)
HERE = os.path.dirname(os.path.abspath(__file__))

USERS = ["alice", "bob.smith", "carol_j", "dave99", "erin.m", "frank", "grace.h", "heidi", "ivan.k",
         "judy", "mallory", "niaj", "olivia.r", "peggy", "rupert", "sybil", "trent", "victor.l",
         "walter", "xena", "yusuf", "zoe.b", "j.garcia", "m.müller".replace("ü", "u"), "info"]
DOMAINS = ["example.org", "example.net", "mail.example.com", "corp.example", "shop.example.co.uk",
           "uni.example.edu", "isp.example.de", "example.fr", "example.es", "example.it"]
HOSTS = ["mx1.{d}", "mx.{d}", "smtp-in.{d}", "mail.{d}", "mx2.{d}"]
SENDER = "news@shop.cartero.test"
BOUNCE_DOMAIN = "bounces.cartero.test"

# (diagnostic template, status, expected class, permanent?)
FAIL = [
    ("550 5.1.1 <{a}>: Recipient address rejected: User unknown in local recipient table", "5.1.1", 10),
    ("550 5.1.1 <{a}>... User unknown", "5.1.1", 10),
    ("550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos", "5.1.1", 10),
    ("550 5.1.1 Mailbox does not exist", "5.1.1", 10),
    ("550 5.2.1 The email account that you tried to reach is disabled.", "5.2.1", 10),
    ("553 5.1.3 <{a}>: Recipient address rejected: invalid address", "5.1.3", 10),
    ("552 5.2.2 <{a}>: Mailbox full", "5.2.2", 22),
    ("552 5.2.2 Quota exceeded (mailbox for user is full)", "5.2.2", 22),
    ("554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org", "5.7.1", 51),
    ("550 5.7.1 Our system has detected that this message is likely unsolicited mail (spam).", "5.7.1", 52),
    ("552 5.3.4 Message size exceeds fixed maximum message size", "5.3.4", 23),
    ("554 5.4.4 Unable to route: no mail hosts for domain", "5.4.4", 21),
    ("550 5.7.1 Relaying denied", "5.7.1", 54),
    ("550 5.7.1 Delivery not authorized, message refused", "5.7.1", 50),
]
DELAY = [
    ("451 4.7.1 Greylisted, please try again later", "4.7.1", 70),
    ("452 4.2.2 Mailbox full, try again later", "4.2.2", 22),
    ("421 4.4.2 Connection timed out", "4.4.2", 24),
]


def addr():
    return f"{R.choice(USERS)}{R.randint(1, 999)}@{R.choice(DOMAINS)}"


def token():
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(R.choice(alphabet) for _ in range(22)) + "." + "".join(R.choice(alphabet) for _ in range(10))


def date():
    return f"{R.choice(['Mon', 'Tue', 'Wed', 'Thu', 'Fri'])}, {R.randint(1, 28)} {R.choice(['Jan', 'Feb', 'Mar', 'Apr', 'May'])} 2025 {R.randint(0, 23):02}:{R.randint(0, 59):02}:{R.randint(0, 59):02} +0000"


def msgid(d="shop.cartero.test"):
    return f"<{R.randint(10**9, 10**10)}.{R.randint(1000, 9999)}@{d}>"


def original(a, tok, mid, with_token=True):
    lines = [f"Return-Path: <b-{tok}@{BOUNCE_DOMAIN}>", f"Message-ID: {mid}", f"Date: {date()}",
             f"From: Shop <{SENDER}>", f"To: <{a}>", "Subject: Spring sale: 20% off everything",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    if with_token:
        lines.insert(3, f"X-Cartero-Token: {tok}")
    return "\n".join(lines) + "\n\nHello, our spring sale starts today.\n"


class Case:
    """One generated bounce: recipient, diagnostic, class and the identifiers."""

    def __init__(self, delayed=False):
        self.a = addr()
        self.d = self.a.split("@")[1]
        self.host = R.choice(HOSTS).format(d=self.d)
        self.ip = f"203.0.113.{R.randint(1, 254)}"
        diag, self.status, self.cls = R.choice(DELAY if delayed else FAIL)
        self.diag = diag.format(a=self.a)
        self.code = self.diag[:3]
        self.tok = token()
        self.mid = msgid()
        self.delayed = delayed
        self.to = f"b-{self.tok}@{BOUNCE_DOMAIN}"


def headers(c, frm, subject, ctype, extra=""):
    return (f"Return-Path: <>\nReceived: from {R.choice(['relay', 'out', 'mta'])}{R.randint(1, 9)}.{c.d} "
            f"({c.ip}) by in.{BOUNCE_DOMAIN}; {date()}\nDate: {date()}\nFrom: {frm}\nTo: {c.to}\n"
            f"Subject: {subject}\nMessage-ID: {msgid(c.d)}\nMIME-Version: 1.0\n{extra}Content-Type: {ctype}\n")


def dsn(c, frm, subject, human, reporting, rcpt_fields=None, headers_only=False, extra="",
        text_b64=False, original_token=True, gds=False):
    b = f"=_{R.randint(10**6, 10**7)}_report"
    act = "delayed" if c.delayed else "failed"
    fields = rcpt_fields or (f"Final-Recipient: rfc822; {c.a}\nOriginal-Recipient: rfc822;{c.a}\n"
                             f"Action: {act}\nStatus: {c.status}\nRemote-MTA: dns; {c.host}\n"
                             f"Diagnostic-Code: smtp; {wrap(c.diag)}\n")
    if text_b64:
        tpart = ("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
                 + "\n".join(chunks(base64.b64encode(human.encode()).decode(), 76)) + "\n")
    else:
        tpart = f"Content-Type: text/plain; charset=us-ascii\nContent-Description: Notification\n\n{human}\n"
    orig = original(c.a, c.tok, c.mid, original_token)
    if headers_only:
        opart = "Content-Type: text/rfc822-headers\n\n" + orig.split("\n\n")[0] + "\n"
    else:
        opart = "Content-Type: message/rfc822\nContent-Description: Undelivered Message\n\n" + orig
    st = "message/global-delivery-status" if gds else "message/delivery-status"
    body = (f"This is a MIME-encapsulated message.\n\n--{b}\n{tpart}\n--{b}\nContent-Type: {st}\n\n"
            f"Reporting-MTA: dns; {reporting}\nX-Postfix-Queue-ID: {R.randint(10**8, 10**9):X}\n"
            f"Arrival-Date: {date()}\n\n{fields}\n--{b}\n{opart}\n--{b}--\n")
    ctype = f'multipart/report; report-type=delivery-status;\n\tboundary="{b}"'
    return headers(c, frm, subject, ctype, extra) + "\n" + body


def wrap(s):
    """Folds long diagnostics the way MTAs do (continuation lines start with spaces)."""
    if len(s) < 70:
        return s
    cut = s.rfind(" ", 0, 60)
    return s[:cut] + "\n    " + s[cut + 1:]


def chunks(s, n):
    return [s[i:i + n] for i in range(0, len(s), n)]


def plain(c, frm, subject, body, extra=""):
    return headers(c, frm, subject, "text/plain; charset=us-ascii", extra) + "\n" + body


# ---------------------------------------------------------------- families (each: Case -> (eml, kind))
def postfix(c):
    host = f"mail.{R.choice(['sender', 'relay', 'out'])}.cartero.test"
    if c.delayed:
        human = (f"This is the mail system at host {host}.\n\n####################################################################\n"
                 "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
                 "####################################################################\n\n"
                 "Your message could not be delivered for more than 4 hour(s).\nIt will be retried until it is 5 day(s) old.\n\n"
                 f"                   The mail system\n\n<{c.a}>: host {c.host}[{c.ip}] said: {c.diag}\n    (in reply to RCPT TO command)\n")
        subject = "Delayed Mail (still being retried)"
    else:
        human = (f"This is the mail system at host {host}.\n\nI'm sorry to have to inform you that your message could not\n"
                 "be delivered to one or more recipients. It's attached below.\n\nFor further assistance, please send mail to postmaster.\n\n"
                 "If you do so, please include this problem report. You can\ndelete your own text from the attached returned message.\n\n"
                 f"                   The mail system\n\n<{c.a}>: host {c.host}[{c.ip}] said: {wrap(c.diag)} (in reply to RCPT TO command)\n")
        subject = "Undelivered Mail Returned to Sender"
    frm = f"MAILER-DAEMON@{host} (Mail Delivery System)"
    if R.random() < 0.6:
        return dsn(c, frm, subject, human, host, headers_only=R.random() < 0.3,
                   extra="Auto-Submitted: auto-replied\n", original_token=R.random() < 0.7), "dsn"
    return plain(c, frm, subject, human + "\n--- Below this line is a copy of the message.\n\n" + original(c.a, c.tok, c.mid)), "nonstandard:postfix"


def exim(c):
    host = f"mx{R.randint(1, 9)}.hosting.example"
    lead = ("This message was created automatically by mail delivery software.\n\n"
            "A message that you sent could not be delivered to one or more of its\n"
            "recipients. This is a permanent error. The following address(es) failed:\n\n")
    variant = R.randint(0, 2)
    if variant == 0:
        detail = f"  {c.a}\n    host {c.host} [{c.ip}]\n    SMTP error from remote mail server after RCPT TO:<{c.a}>:\n    {c.diag}\n"
    elif variant == 1:
        detail = f"  {c.a}\n    SMTP error from remote mail server after end of data:\n    host {c.host} [{c.ip}]: {c.diag}\n"
    else:
        detail = f"  {c.a}\n    host {c.host} [{c.ip}]\n    SMTP error from remote mail server after RCPT TO:<{c.a}>:\n    {c.diag}\n"
    body = lead + detail + "\n------ This is a copy of the message, including all the headers. ------\n\n" + original(c.a, c.tok, c.mid)
    return plain(c, f"Mail Delivery System <Mailer-Daemon@{host}>", "Mail delivery failed: returning message to sender", body,
                 extra="X-Failed-Recipients: " + c.a + "\nAuto-Submitted: auto-replied\n"), "nonstandard:exim"


def exim_special(c):
    """Exim local failures without an SMTP reply."""
    host = f"mx{R.randint(1, 9)}.hosting.example"
    reason, c.status, c.cls = R.choice([
        ("Unrouteable address", "5.1.2", 21),
        ("all relevant MX records point to non-existent hosts", "5.1.2", 21),
        ("retry timeout exceeded", "4.4.7", 24),
        ("mailbox is full: retry timeout exceeded", "5.2.2", 22),
    ])
    body = ("This message was created automatically by mail delivery software.\n\n"
            "A message that you sent could not be delivered to one or more of its\n"
            "recipients. This is a permanent error. The following address(es) failed:\n\n"
            f"  {c.a}\n    {reason}\n\n------ This is a copy of the message, including all the headers. ------\n\n" + original(c.a, c.tok, c.mid))
    return plain(c, f"Mail Delivery System <Mailer-Daemon@{host}>", "Mail delivery failed: returning message to sender", body,
                 extra="Auto-Submitted: auto-replied\n"), "nonstandard:exim"


def sendmail(c):
    host = f"smtp{R.randint(1, 5)}.legacy.example"
    human = (f"The original message was received at {date()}\nfrom localhost [127.0.0.1]\n\n"
             f"   ----- The following addresses had permanent fatal errors -----\n<{c.a}>\n"
             f"    (reason: {c.diag})\n\n   ----- Transcript of session follows -----\n"
             f"... while talking to {c.host}.:\n>>> RCPT To:<{c.a}>\n<<< {c.diag}\n{c.code} 5.1.1 <{c.a}>... User unknown\n" if c.cls == 10 else
             f"The original message was received at {date()}\nfrom localhost [127.0.0.1]\n\n"
             f"   ----- The following addresses had permanent fatal errors -----\n<{c.a}>\n"
             f"    (reason: {c.diag})\n\n   ----- Transcript of session follows -----\n"
             f"... while talking to {c.host}.:\n>>> DATA\n<<< {c.diag}\n")
    frm = f"Mail Delivery Subsystem <MAILER-DAEMON@{host}>"
    subject = "Returned mail: see transcript for details"
    if R.random() < 0.5:
        return dsn(c, frm, subject, human, host), "dsn"
    return plain(c, frm, subject, human + "\n   ----- Original message follows -----\n\n" + original(c.a, c.tok, c.mid)), "nonstandard:sendmail"


def qmail(c):
    host = f"mail{R.randint(1, 9)}.qmail-host.example"
    if R.random() < 0.3:
        c.diag, c.status, c.cls = "Sorry, no mailbox here by that name. (#5.1.1)", "5.1.1", 10
        detail = f"<{c.a}>:\n{c.diag}\n"
    else:
        detail = f"<{c.a}>:\n{c.ip} does not like recipient.\nRemote host said: {c.diag}\nGiving up on {c.ip}.\n"
    body = (f"Hi. This is the qmail-send program at {host}.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n"
            "This is a permanent error; I've given up. Sorry it didn't work out.\n\n" + detail +
            "\n--- Below this line is a copy of the message.\n\n" + original(c.a, c.tok, c.mid))
    return plain(c, f"MAILER-DAEMON@{host}", "failure notice", body), "nonstandard:qmail"


def yahoo(c):
    if R.random() < 0.3:
        c.a = f"{R.choice(USERS)}{R.randint(1, 999)}@{R.choice(['yahoo.com', 'ymail.com', 'yahoo.co.uk'])}"
        c.diag, c.status, c.cls = f"554: delivery error: dd This user doesn't have a yahoo.com account ({c.a}) [0] - mta{R.randint(1000, 9999)}.mail.bf1.yahoo.com", None, 10
        detail = f"{c.a}:\nRemote host said: {c.diag}\n"
    else:
        detail = f"{c.a}:\n{c.ip} does not like recipient.\nRemote host said: {c.diag} [RCPT_TO]\nGiving up on {c.ip}.\n"
    body = ("Sorry, we were unable to deliver your message to the following address.\n\n" + "<" + detail.replace(":\n", ">:\n", 1) +
            "\n--- Below this line is a copy of the message.\n\n" + original(c.a, c.tok, c.mid))
    return plain(c, "MAILER-DAEMON@yahoo.com", "Failure Notice", body), "nonstandard:yahoo"


def exchange(c):
    srv = f"EXCH{R.randint(1, 20):02}.corp.example"
    v = R.randint(0, 2)
    if v == 0:
        human = (f"Delivery has failed to these recipients or groups:\n\n{c.a}\nThe e-mail address you entered couldn't be found. "
                 "Please check the recipient's e-mail address and try to resend the message.\n\n"
                 f"Diagnostic information for administrators:\n\nGenerating server: {srv}\n\n{c.a}\n"
                 f"{c.host}\nRemote Server returned '{c.diag}'\n\nOriginal message headers:\n\n" + original(c.a, c.tok, c.mid).split("\n\n")[0])
    elif v == 1:
        human = (f"Your message did not reach some or all of the intended recipients.\n\n      Subject:\tSpring sale\n      Sent:\t{date()}\n\n"
                 f"The following recipient(s) cannot be reached:\n\n      '{c.a}' on {date()}\n"
                 "            None of your e-mail accounts could send to this recipient.\n"
                 f"            <{srv} #{c.status} smtp;{c.diag}>\n")
    else:
        human = (f"Delivery has failed to these recipients or groups:\n\n{c.a}\n"
                 "The recipient's mailbox is full and can't accept messages now.\n\n"
                 f"Diagnostic information for administrators:\n\nGenerating server: {srv}\n\n{c.a}\n"
                 f"#{c.diag} ##\n")
    frm = f"Microsoft Outlook <postmaster@{srv.split('.', 1)[1]}>" if v != 1 else f"System Administrator <postmaster@{srv.split('.', 1)[1]}>"
    subject = "Undeliverable: Spring sale: 20% off everything"
    if R.random() < 0.5:
        return dsn(c, frm, subject, human, srv, text_b64=R.random() < 0.5), "dsn"
    return plain(c, frm, subject, human), "nonstandard:exchange"


def office365(c):
    if R.random() < 0.6:
        c.diag, c.status, c.cls = R.choice([
            ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "5.1.10", 10),
            ("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", "5.1.1", 10),
            ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", "5.4.1", 10),
            ("554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException", "5.2.2", 22),
        ])
    user, dom = c.a.split("@")
    human = (f"Your message to {c.a} couldn't be delivered.\n\n{user} wasn't found at {dom}.\n\n"
             f"Action Required\t\t\tRecipient\nUnknown To address\n\nHow to Fix It\nThe address may be misspelled or may not exist.\n\n"
             f"More Info for Email Admins\nStatus code: {c.diag[:3]} {c.status}\n\n"
             f"Original Message Details\nCreated Date:\t{date()}\nSender Address:\t{SENDER}\nRecipient Address:\t{c.a}\n\n"
             f"Error Details\nReported error:\t{c.diag}\nDSN generated by:\tAM{R.randint(1, 9)}PR0{R.randint(1, 9)}MB{R.randint(1000, 9999)}.eurprd0{R.randint(1, 9)}.prod.outlook.com\n")
    frm = "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@corp.example.onmicrosoft.com>"
    subject = "Undeliverable: Spring sale: 20% off everything"
    if R.random() < 0.6:
        return dsn(c, frm, subject, human, f"DB{R.randint(1, 9)}PR0{R.randint(1, 9)}MB{R.randint(1000, 9999)}.eurprd04.prod.outlook.com"), "dsn"
    return plain(c, frm, subject, human), "nonstandard:office365"


def gmail(c):
    if c.cls == 10:
        head = f"** Address not found **\n\nYour message wasn't delivered to {c.a} because the address couldn't be found, or is unable to receive mail.\n\nLearn more here: https://support.google.com/mail/?p=NoSuchUser\n\n"
    elif c.cls == 22:
        head = f"** Message not delivered **\n\nYour message couldn't be delivered to {c.a} because the remote server's inbox is full.\n\n"
    else:
        head = f"** Message blocked **\n\nYour message to {c.a} has been blocked. See technical details below for more information.\n\n"
    human = head + f"The response from the remote server was:\n{c.diag}\n"
    if R.random() < 0.25:
        human = (f"Delivery to the following recipient failed permanently:\n\n     {c.a}\n\nTechnical details of permanent failure:\n"
                 f"Google tried to deliver your message, but it was rejected by the server for the recipient domain {c.d} by {c.host}. [{c.ip}].\n\n"
                 f"The error that the other server returned was:\n{c.diag}\n")
    frm = "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"
    subject = "Delivery Status Notification (Failure)"
    if R.random() < 0.6:
        return dsn(c, frm, subject, human, "mail-sor-f41.google.com", extra="Auto-Submitted: auto-replied\n"), "dsn"
    return plain(c, frm, subject, human + "\n----- Original message -----\n\n" + original(c.a, c.tok, c.mid)), "nonstandard:gmail"


def ses(c):
    human = ("An error occurred while trying to deliver the mail to the following recipients:\n" + c.a + "\n")
    frm = "MAILER-DAEMON@amazonses.com"
    subject = "Delivery Status Notification (Failure)"
    if R.random() < 0.7:
        return dsn(c, frm, subject, human, "a8-52.smtp-out.amazonses.com"), "dsn"
    return plain(c, frm, subject, human + f"\nReason: {c.diag}\n"), "nonstandard:ses"


def domino(c):
    user = c.a.split("@")[0]
    reason, c.status, c.cls, c.diag = R.choice([
        (f"User {user} ({c.a}) not listed in Domino Directory", "5.1.1", 10, None),
        ("Router: Unable to deliver because the mail file is full", "5.2.2", 22, None),
        (f"Server says: {c.diag}", c.status, c.cls, c.diag),
    ])
    body = (f"Your message\n\n  Subject: Spring sale: 20% off everything\n\nwas not delivered to:\n\n  {c.a}\n\n"
            f"because:\n\n  {reason}\n")
    subject = f"DELIVERY FAILURE: {reason}" if R.random() < 0.5 else "DELIVERY FAILURE: Error transferring to mail.corp.example"
    return plain(c, "Mail Router <postmaster@notes.corp.example>", subject, body,
                 extra="X-Mailer: Lotus Domino Release 9.0.1FP8\n"), "nonstandard:domino"


def courier(c):
    host = f"courier{R.randint(1, 4)}.isp.example"
    body = (f"This is a delivery status notification from {host},\nrunning the Courier mail server, version 1.1.4.\n\n"
            f"The original message was received on {date()}\nfrom localhost [127.0.0.1]\n\n"
            "---------------------------------------------------------------------------\n\n"
            "                           UNDELIVERABLE MAIL\n\nYour message to the following recipients cannot be delivered:\n\n"
            f"<{c.a}>:\n    {c.host} [{c.ip}]:\n>>> RCPT TO:<{c.a}>\n<<< {c.diag}\n\n"
            "---------------------------------------------------------------------------\n")
    return plain(c, f"Courier mail server at {host} <@>", "NOTICE: mail delivery status.", body), "nonstandard:courier"


def mdaemon(c):
    body = ("The attached message had PERMANENT fatal delivery errors!\n\n"
            "After one or more unsuccessful delivery attempts the attached message has\nbeen removed from the mail queue on this server.  "
            "The number and frequency\nof delivery attempts are determined by local configuration parameters.\n\n"
            "YOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\n--- Session Transcript ---\n"
            f" {date()} Session 1234; child 0001\n Attempting SMTP connection to [{c.host} : 25]\n"
            f" Attempting to send message to [{c.ip} : 25]\n Connection established {c.ip}:25\n"
            " MAIL From:<" + f"b-{c.tok}@{BOUNCE_DOMAIN}" + "> SIZE=2048\n 250 2.1.0 Sender OK\n"
            f" RCPT To:<{c.a}>\n {c.diag}\n--- End Transcript ---\n")
    return plain(c, "MDaemon@mail.smallbiz.example", "Permanent Delivery Failure", body,
                 extra="X-MDaemon-Deliver-To: " + c.to + "\n"), "nonstandard:mdaemon"


def groupwise(c):
    reason, c.status, c.cls, c.diag = R.choice([
        ("user not found", "5.1.1", 10, None),
        ("mailbox full", "5.2.2", 22, None),
        (c.diag, c.status, c.cls, c.diag),
    ])
    body = (f"The message that you sent was undeliverable to the following:\n\t{c.a} ({reason})\n\n"
            f"Possible causes:\n\tThe e-mail address is incorrect.\n\nOriginal recipients: {c.a}\n")
    return plain(c, "postmaster@gw.agency.example", "Undeliverable mail", body,
                 extra="X-Mailer: Novell GroupWise Internet Agent 18.2.0\n"), "nonstandard:groupwise"


def mimecast(c):
    body = (f"Your message couldn't be delivered to the recipients shown below.\n\nRecipient: {c.a}\n"
            f"Reason: {c.diag}\nFrom: {SENDER}\nSubject: Spring sale: 20% off everything\n\n"
            "Mimecast Ltd is a company registered in England and Wales.\n")
    return plain(c, "Mimecast Postmaster <postmaster@mimecast.com>", "Delivery Failure Notification", body), "nonstandard:mimecast"


def barracuda(c):
    body = (f"Your message could not be delivered.\n\nRecipient: {c.a}\nReason: {c.diag}\n\n"
            "This message was generated by a Barracuda Email Security Gateway.\n")
    return plain(c, f"Barracuda Email Security <postmaster@barracuda.{c.d}>", "Undeliverable: Spring sale", body), "nonstandard:barracuda"


def smtpsvc(c):
    human = ("This is an automatically generated Delivery Status Notification.\n\n"
             "Delivery to the following recipients failed.\n\n" f"       {c.a}\n\n")
    frm = f"postmaster@iis.{c.d}"
    if R.random() < 0.5:
        return dsn(c, frm, "Delivery Status Notification (Failure)", human, f"iis.{c.d}"), "dsn"
    return plain(c, frm, "Delivery Status Notification (Failure)", human + f"   Reason: {c.diag}\n"), "nonstandard:smtpsvc"


def messaging_server(c):
    human = ("This report relates to a message you sent with the following header fields:\n\n"
             f"  Message-id: {c.mid}\n  Date: {date()}\n  From: {SENDER}\n  Subject: Spring sale\n\n"
             "Your message cannot be delivered to the following recipients:\n\n"
             f"  Recipient address: {c.a}\n  Reason: Remote SMTP server has rejected address\n"
             f"  Diagnostic code: smtp;{c.diag}\n  Remote system: dns;{c.host} (TCP|{c.ip}|25)\n")
    frm = f"Internet Mail Delivery <postmaster@ms.{c.d}>"
    if R.random() < 0.5:
        return dsn(c, frm, "Delivery Notification: Delivery has failed", human, f"ms.{c.d}", gds=R.random() < 0.3), "dsn"
    return plain(c, frm, "Delivery Notification: Delivery has failed", human), "nonstandard:messaging-server"


def generic_dsn(c):
    """Minimal RFC 3464 DSNs from other MTAs (OpenSMTPD, Haraka, Zimbra, iCloud, mail.ru, …)."""
    who = R.choice(["OpenSMTPD", "Haraka", "Zimbra", "iCloud", "Mail.ru", "Zoho", "GMX", "Orange"])
    human = f"Hi!\n\nThis is the MAILER-DAEMON, please DO NOT REPLY to this email.\n\n({who}) Delivery to {c.a} failed:\n{c.diag}\n"
    act = "delayed" if c.delayed else "failed"
    fields = (f"Final-Recipient: RFC822; <{c.a}>\nAction: {act.upper() if R.random() < 0.3 else act}\nStatus: {c.status}\n"
              f"Diagnostic-Code: SMTP;\n {c.diag}\nLast-Attempt-Date: {date()}\n")
    return dsn(c, f"Mailer Daemon <MAILER-DAEMON@relay.{who.lower().replace('.', '')}.example>",
               "Delivery status notification" + (" (delayed)" if c.delayed else ""), human, f"relay.{who.lower()}.example",
               rcpt_fields=fields), "dsn"


def delayed_dsn(c):
    return postfix(c) if R.random() < 0.5 else generic_dsn(c)


FAMILIES = [
    ("postfix", postfix, 12), ("exim", exim, 8), ("exim", exim_special, 4), ("sendmail", sendmail, 10),
    ("qmail", qmail, 10), ("yahoo", yahoo, 10), ("exchange", exchange, 10), ("office365", office365, 10),
    ("gmail", gmail, 10), ("ses", ses, 8), ("domino", domino, 8), ("courier", courier, 8), ("mdaemon", mdaemon, 8),
    ("groupwise", groupwise, 8), ("mimecast", mimecast, 8), ("barracuda", barracuda, 6), ("smtpsvc", smtpsvc, 8),
    ("messaging-server", messaging_server, 8), ("generic-dsn", generic_dsn, 10), ("delayed", delayed_dsn, 8),
]


# ---------------------------------------------------------------- ARF
FBL = [("Yahoo! Mail AntiSpam Feedback", "feedback@arf.mail.yahoo.com", "Yahoo!-Mail-Feedback/2.0"),
       ("AOL SCOMP", "scomp@aol.net", "AOL SComp"),
       ("Comcast FBL", "feedbackloop@comcast.net", "Comcast FBL/1.0"),
       ("Outlook JMRP", "staff@hotmail.com", "Microsoft JMRP"),
       ("Mail.ru FBL", "fbl@corp.mail.ru", "Mail.Ru FBL"),
       ("Fastmail", "abuse@fastmail.com", "Fastmail-ARF/1.0"),
       ("Zoho", "fbl@zoho.com", "ZohoMail-ARF/1.0")]


def arf(i):
    name, frm, agent = FBL[i % len(FBL)]
    a, tok, mid = addr(), token(), msgid()
    ftype = R.choice(["abuse"] * 6 + ["fraud", "other", "virus", "not-spam"])
    b = f"arf_{R.randint(10**6, 10**7)}"
    redacted = R.random() < 0.25
    rcpt_line = "" if redacted else f"Original-Rcpt-To: <{a}>\n"
    orig = original("redacted@" + a.split("@")[1] if redacted else a, tok, mid, with_token=R.random() < 0.8)
    opart = ("Content-Type: message/rfc822\nContent-Disposition: inline\n\n" + orig if R.random() < 0.7
             else "Content-Type: text/rfc822-headers\n\n" + orig.split("\n\n")[0] + "\n")
    eml = (f"From: {name} <{frm}>\nDate: {date()}\nSubject: FW: Spring sale: 20% off everything\nTo: fbl@{BOUNCE_DOMAIN}\n"
           f"Message-ID: {msgid(frm.split('@')[1])}\nMIME-Version: 1.0\n"
           f"Content-Type: multipart/report; report-type=feedback-report;\n\tboundary=\"{b}\"\n\n"
           f"--{b}\nContent-Type: text/plain; charset=\"US-ASCII\"\nContent-Transfer-Encoding: 7bit\n\n"
           f"This is an email abuse report for an email message received from IP 192.0.2.{R.randint(1, 250)} on {date()}.\n"
           "For more information about this format please see http://www.mipassoc.org/arf/.\n\n"
           f"--{b}\nContent-Type: message/feedback-report\n\nFeedback-Type: {ftype}\nUser-Agent: {agent}\nVersion: 1\n"
           f"Original-Mail-From: <b-{tok}@{BOUNCE_DOMAIN}>\n{rcpt_line}Arrival-Date: {date()}\n"
           f"Source-IP: 192.0.2.{R.randint(1, 250)}\nReported-Domain: shop.cartero.test\n"
           f"Authentication-Results: mx.{frm.split('@')[1]};\n  dkim=pass header.d=shop.cartero.test\n\n"
           f"--{b}\n{opart}\n--{b}--\n")
    label_addr = "" if redacted else a
    return eml, "arf", label_addr, "none" if ftype == "not-spam" else "complaint", tok


# ---------------------------------------------------------------- auto-replies and challenge-response
AUTO_SUBJECTS = ["Out of Office: Spring sale", "Automatic reply: Spring sale: 20% off everything", "Auto: Spring sale",
                 "Abwesenheitsnotiz: Spring sale", "Réponse automatique : Spring sale", "Respuesta automática: Spring sale",
                 "I am away until Monday", "Vacation reply", "Risposta automatica: Spring sale", "AutoReply: Re: Spring sale",
                 "On holiday until 3 March", "Afwezig: Spring sale"]
AUTO_HEADERS = ["Auto-Submitted: auto-replied\n", "X-Autoreply: yes\n", "X-Autorespond: Spring sale\n",
                "Precedence: auto_reply\n", "Auto-Submitted: auto-replied (vacation)\n", "", ""]
AUTO_BODIES = ["I am out of the office until 14 March with limited access to email.\nFor urgent matters please contact my colleague.\n",
               "Ich bin bis zum 10. April nicht im Büro. Ihre Nachricht wird nicht weitergeleitet.\n",
               "Thank you for your message. I'm on vacation and will reply when I return.\n",
               "Je suis absent du bureau jusqu'au 2 mai.\n"]

CR = [("Please confirm your message", "To prevent spam, I use a challenge-response system.\nPlease verify you are human by clicking the link below:\nhttps://verify.cr.example/c/8f2a1\n"),
      ("[SpamArrest] Verification required", "Your message to me is being held until you complete the verification process.\nPlease complete the verification request at https://www.spamarrest.example/v/123\n"),
      ("Boxbe: action required: verify your email", "Your email is held pending verification.\nAdd you to my approved senders by clicking below.\n"),
      ("Sender verification request", "Your message has been held until you confirm. Please verify that you are a real person: https://cr.example/x\n")]


def auto_reply(i):
    a, tok = addr(), token()
    hdr = AUTO_HEADERS[i % len(AUTO_HEADERS)]
    subj = AUTO_SUBJECTS[i % len(AUTO_SUBJECTS)]
    in_reply = msgid()
    eml = (f"Return-Path: <>\nFrom: {R.choice(['Jane Doe', 'Max Mustermann', 'Pierre Dupont'])} <{a}>\nTo: Shop <b-{tok}@{BOUNCE_DOMAIN}>\n"
           f"Subject: {subj if not subj.isascii() else subj}\nDate: {date()}\nMessage-ID: {msgid(a.split('@')[1])}\n"
           f"In-Reply-To: {in_reply}\n{hdr}MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
           + AUTO_BODIES[i % len(AUTO_BODIES)])
    return eml, "auto_reply", a, "60", tok


def challenge(i):
    a, tok = addr(), token()
    subj, body = CR[i % len(CR)]
    eml = (f"From: {a.split('@')[0]} <{a}>\nTo: b-{tok}@{BOUNCE_DOMAIN}\nSubject: {subj}\nDate: {date()}\n"
           f"Message-ID: {msgid()}\nAuto-Submitted: auto-replied\nContent-Type: text/plain; charset=us-ascii\n\n{body}")
    return eml, "challenge_response", a, "100", tok


# ---------------------------------------------------------------- writer
def write_folder(path, rows):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    with open(os.path.join(path, "labels.tsv"), "w") as labels:
        labels.write("# file\tkind\taddress\tclass\ttoken\n")
        for i, (eml, kind, a, cls, tok) in enumerate(rows):
            name = f"{i + 1:03}.eml"
            data = eml.replace("\n", "\r\n") if R.random() < 0.5 else eml
            with open(os.path.join(path, name), "w", newline="") as f:
                f.write(data)
            labels.write(f"{name}\t{kind}\t{a}\t{cls}\t{tok}\n")


def main():
    folders = {}
    for name, fn, n in FAMILIES:
        for _ in range(n):
            c = Case(delayed=name == "delayed")
            eml, kind = fn(c)
            folders.setdefault(name, []).append((eml, kind, c.a, str(c.cls), c.tok))
    if os.path.isdir(os.path.join(HERE, "bounces")):
        shutil.rmtree(os.path.join(HERE, "bounces"))
    for name, rows in folders.items():
        write_folder(os.path.join(HERE, "bounces", name), rows)
    write_folder(os.path.join(HERE, "arf"), [arf(i) for i in range(24)])
    write_folder(os.path.join(HERE, "autoreplies"), [auto_reply(i) for i in range(24)] + [challenge(i) for i in range(6)])


if __name__ == "__main__":
    main()
