#!/usr/bin/env python3
"""Generates the labelled "world2" corpus under corpus/world2/<folder>/ (NNN.eml + labels.tsv).

gen_world.py covers the long tail of MTAs with one or two layouts each. This script looks at the
same problem from an e-mail service provider's side: the bounces it sees most (Gmail, Microsoft,
Yahoo/AOL, Postfix, Exim, sendmail, Exchange, security appliances, the large ISPs of several
countries, other ESPs) in many variants per source, delay notices from many MTAs, and a folder
of hard cases (Status 5.0.0 only, odd Final-Recipient types, glued recipient blocks, HTML-only
and encoded bodies, mbox files, contradictory codes, success DSNs, auto-replies, challenges and
ARF reports).

Every template below was written by hand from the documented or commonly seen wording and layout
of each MTA / provider (RFC 3461-3464 DSNs, RFC 5965 ARF, vendor reply codes, which are facts
about those systems). Nothing is copied from another project's fixtures. Recipients, senders and
hosts are placeholders (example.*, *.example, *.test, 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24); provider host names appear only where a provider's own machine is named
(Received, Reporting-MTA, Remote-MTA, "host ... said") and provider addresses only as the From of
that provider's own bounces.

Variation comes from a fixed-seed generator with no clock, so re-running reproduces the files
byte for byte.

Run from this directory:  python3 gen_world2.py
Labels: file, kind (bounce | arf | auto_reply | challenge_response), recipient(s) as originally
addressed (comma-separated), class (Momentum class number, `complaint` or `none`), token (empty
when the message carries none).
"""
import base64
import datetime
import os
import quopri
import random
import shutil
import string

R = random.Random(7741)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "world2")
SENDER = "news@shop.cartero.test"
SENDER_DOMAIN = "shop.cartero.test"
BD = "bounces.cartero.test"
OUR_MTA = "mta1.shop.cartero.test"
OUR_IP = "192.0.2.25"

LOCALS = ["amelia", "ben.okafor", "chloe", "diego.r", "elif", "fatima.z", "gustav", "hana.s", "igor", "jun.li",
          "kemal", "lena.b", "marco", "nadia", "oscar.p", "priya", "quentin", "rosa.m", "samir", "tomasz", "ulla",
          "valentina", "wei.zhang", "ximena", "yara", "zeynep", "orders", "contact", "hello", "team"]
DOMAINS = ["example.org", "example.net", "example.com", "mail.example.net", "biz.example", "home.example",
           "campus.example", "clients.test", "kunde.test", "office.example.com"]
SUBJECTS = ["Your cart is waiting", "April newsletter", "Receipt for order 77120", "New arrivals this week",
            "Password reset requested", "Your loyalty points", "Event reminder: Thursday 6 pm"]
ALNUM = string.ascii_letters + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
CODECS = {"iso-2022-jp": "iso2022_jp", "shift_jis": "shift_jis", "euc-kr": "euc_kr", "gb2312": "gb2312",
          "gbk": "gbk", "gb18030": "gb18030", "koi8-r": "koi8_r", "windows-1251": "cp1251",
          "windows-1252": "cp1252", "iso-8859-1": "latin-1", "iso-8859-15": "iso8859_15", "utf-8": "utf-8",
          "us-ascii": "ascii", "big5": "big5"}
CTES = {"qp": "quoted-printable", "b64": "base64", "7bit": "7bit", "8bit": "8bit"}


# ================================================================ small random pieces
def addr(domains=None, local=None):
    return f"{local or R.choice(LOCALS)}{R.randint(2, 990)}@{R.choice(domains or DOMAINS)}"


def make_token():
    return "".join(R.choice(ALNUM) for _ in range(22)) + "." + "".join(R.choice(ALNUM) for _ in range(10))


def hx(n=10, alphabet="0123456789ABCDEF"):
    return "".join(R.choice(alphabet) for _ in range(n))


def lc(n=10):
    return hx(n, "abcdefghijklmnopqrstuvwxyz0123456789")


def doc_ip(net=None):
    return f"{net or R.choice(['203.0.113', '198.51.100'])}.{R.randint(2, 250)}"


def when():
    return datetime.datetime(2025, R.randint(1, 12), R.randint(1, 28), R.randint(0, 23), R.randint(0, 59),
                             R.randint(0, 59))


def rfcdate(d=None, zone=None, paren=False):
    d = d or when()
    zone = zone or R.choice(["+0000", "+0100", "+0200", "-0400", "-0500", "-0700", "+0530", "+0900"])
    s = f"{DAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year} {d.hour:02}:{d.minute:02}:{d.second:02} {zone}"
    if paren:
        s += {"+0000": " (UTC)", "-0700": " (PDT)", "-0800": " (PST)", "+0100": " (CET)", "+0900": " (JST)"}.get(zone, "")
    return s


def usdate(d=None):
    d = d or when()
    h = d.hour % 12 or 12
    return f"{d.month}/{d.day}/{d.year} {h}:{d.minute:02}:{d.second:02} {'AM' if d.hour < 12 else 'PM'}"


def mid(domain):
    return f"<{hx(8, '0123456789abcdef')}-{hx(4, '0123456789abcdef')}-{R.randint(1000, 9999)}@{domain}>"


def exim_id():
    return f"{hx(6, B62)}-{hx(6, B62)}-{hx(2, B62)}"


def bnd(style=None):
    style = style or R.choice(["nextpart", "hex", "slash", "part"])
    if style == "nextpart":
        return f"----=_NextPart_{hx(3)}_{hx(4)}_{hx(8)}.{hx(8)}"
    if style == "hex":
        return hx(32, "0123456789abcdef")
    if style == "part":
        return f"----=_Part_{R.randint(10000, 99999)}_{R.randint(10**8, 10**9)}.{R.randint(10**12, 10**13)}"
    return f"{R.randint(10**9, 10**10)}.{hx(6)}/{R.choice(['mx', 'relay', 'out'])}.{R.choice(DOMAINS)}"


def choose(weighted):
    return R.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


# ================================================================ encodings
def to_bytes(text, charset):
    return text.encode(CODECS[charset.lower()])


def as8bit(text, charset):
    """The bytes of `text` in `charset`, kept in a str (surrogateescape) until the file is written."""
    return to_bytes(text, charset).decode("ascii", "surrogateescape")


def enc_qp(text, charset="utf-8"):
    return quopri.encodestring(to_bytes(text, charset)).decode("ascii")


def enc_b64(text, charset="utf-8", width=76):
    s = base64.b64encode(to_bytes(text, charset)).decode()
    return "\n".join(s[i:i + width] for i in range(0, len(s), width)) + "\n"


def encode_body(text, charset="us-ascii", cte=None):
    if cte == "qp":
        return enc_qp(text, charset)
    if cte == "b64":
        return enc_b64(text, charset)
    return as8bit(text, charset)


def _word(s, charset, q):
    raw = to_bytes(s, charset)
    if not q:
        return f"=?{charset}?B?{base64.b64encode(raw).decode()}?="
    out = "".join(chr(b) if chr(b) in ALNUM else "_" if b == 32 else f"={b:02X}" for b in raw)
    return f"=?{charset}?Q?{out}?="


def hdr_words(text, charset="UTF-8", q=False):
    """RFC 2047 encoded words, each under 75 characters, folded onto continuation lines."""
    words, chunk = [], ""
    for ch in text:
        if chunk and len(_word(chunk + ch, charset, q)) > 68:
            words.append(_word(chunk, charset, q))
            chunk = ch
        else:
            chunk += ch
    if chunk:
        words.append(_word(chunk, charset, q))
    return "\n ".join(words)


def wrap(s, width=76, indent="    "):
    """Folds a long line at spaces, the way MTAs fold Diagnostic-Code and reply text."""
    out, line = [], ""
    for w in s.split(" "):
        if line and len(line) + 1 + len(w) > width:
            out.append(line)
            line = indent + w
        else:
            line = f"{line} {w}" if line else w
    out.append(line)
    return "\n".join(out)


def html_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ================================================================ the sent message
class Case:
    """One generated report: the recipient(s), token placement and identifiers of the original."""

    def __init__(self, domains=None, n=1, mode=None, local=None, rcpts=None, subject=None):
        self.rcpts = rcpts or [addr(domains, local) for _ in range(n)]
        self.a = self.rcpts[0]
        self.local, self.d = self.a.split("@")
        self.tok = make_token()
        m = mode or choose([("both", 40), ("to", 22), ("orig", 25), ("none", 13)])
        self.tok_to, self.tok_orig = m in ("both", "to"), m in ("both", "orig")
        self.to = f"b-{self.tok}@{BD}" if self.tok_to else SENDER
        self.mid = mid(SENDER_DOMAIN)
        self.osubj = subject or R.choice(SUBJECTS)
        self.sent = when()
        self.odate = rfcdate(self.sent)
        self.mx = f"{R.choice(['mx1', 'mx', 'mail', 'inbound', 'mx2', 'smtp'])}.{self.d}"
        self.rip = doc_ip("203.0.113")
        self.sip = doc_ip("198.51.100")
        self.orig_used = False

    def f(self, s):
        return (s.replace("{a}", self.a).replace("{d}", self.d).replace("{u}", self.local)
                .replace("{mx}", self.mx).replace("{ip}", self.rip).replace("{sip}", self.sip)
                .replace("{s}", SENDER).replace("{sd}", SENDER_DOMAIN).replace("{subj}", self.osubj))

    def label_token(self):
        return self.tok if self.tok_to or (self.tok_orig and self.orig_used) else ""


def original(c, headers_only=False, html=None):
    """The message cartero sent, as it comes back inside a report."""
    c.orig_used = True
    html = R.random() < 0.4 if html is None else html
    h = [f"Return-Path: <b-{c.tok}@{BD}>" if c.tok_orig or c.tok_to else f"Return-Path: <{SENDER}>",
         f"Received: from app2.{SENDER_DOMAIN} (app2.{SENDER_DOMAIN} [192.0.2.11])\n\tby {OUR_MTA} (cartero) with "
         f"ESMTPSA id {hx(14)}\n\tfor <{c.a}>; {c.odate}",
         f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={SENDER_DOMAIN}; s=k1;\n\th=from:to:subject:date:"
         f"message-id; bh={hx(43, ALNUM)}=;\n\tb={hx(60, ALNUM)}",
         f"Date: {c.odate}", f"From: \"Shop\" <{SENDER}>", "To: " + ", ".join(f"<{r}>" for r in c.rcpts),
         f"Subject: {c.osubj}", f"Message-ID: {c.mid}"]
    if c.tok_orig:
        h.append(f"X-Cartero-Token: {c.tok}")
    h += [f"List-Unsubscribe: <https://{SENDER_DOMAIN}/unsub/{lc(12)}>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
          f"Feedback-ID: {R.randint(10, 99)}:newsletter:cartero", "MIME-Version: 1.0"]
    if html:
        b = f"=_alt_{hx(12, '0123456789abcdef')}"
        h.append(f"Content-Type: multipart/alternative; boundary=\"{b}\"")
        body = (f"--{b}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n"
                f"Hi,\n\nnew arrivals are in: https://{SENDER_DOMAIN}/new\n\n--{b}\nContent-Type: text/html; "
                f"charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n<html><body><p>Hi,</p><p>new arrivals are in: "
                f"<a href=\"https://{SENDER_DOMAIN}/new\">see them</a></p></body></html>\n\n--{b}--\n")
    else:
        h += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 7bit"]
        body = f"Hi,\n\nyour cart is still waiting: https://{SENDER_DOMAIN}/cart\n"
    text = "\n".join(h) + "\n"
    return text if headers_only else text + "\n" + body


# ================================================================ MIME assembly
def part(ctype, body, charset=None, cte=None, extra=(), quote=False):
    cs = "" if not charset else f'; charset="{charset}"' if quote else f"; charset={charset}"
    lines = [f"Content-Type: {ctype}{cs}"] + list(extra)
    if cte:
        lines.append(f"Content-Transfer-Encoding: {CTES[cte]}")
    return "\n".join(lines) + "\n\n" + encode_body(body, charset or "us-ascii", cte)


def text_part(text, charset="us-ascii", cte=None, desc=None, quote=False, extra=()):
    ex = ([f"Content-Description: {desc}"] if desc else []) + list(extra)
    return part("text/plain", text, charset, cte, ex, quote)


def html_part(html, charset="us-ascii", cte=None):
    return part("text/html", html, charset, cte)


def multipart(parts, subtype, b=None, preamble=None):
    b = b or bnd()
    ctype = f'multipart/{subtype};\n\tboundary="{b}"'
    body = (preamble + "\n\n" if preamble else "") + "".join(f"--{b}\n{p}\n" for p in parts) + f"--{b}--\n"
    return ctype, body


def nested(parts, subtype, b=None):
    ctype, body = multipart(parts, subtype, b)
    return f"Content-Type: {ctype}\n\n{body}"


def returned(c, how, desc=None):
    """The original as a MIME part: rfc822, headers only, or nothing."""
    if how == "rfc822":
        return [part("message/rfc822", original(c), extra=[f"Content-Description: {desc}"] if desc else [])]
    if how == "headers":
        return [part("text/rfc822-headers", original(c, headers_only=True),
                     extra=[f"Content-Description: {desc}"] if desc else [])]
    return []


def how_returned(weights=(("rfc822", 5), ("headers", 3), ("none", 1))):
    return choose(list(weights))


def status_part(reporting, fields, extra=(), arrival=True, sp="; ", mta_type="dns"):
    head = [f"Reporting-MTA: {mta_type}{sp}{reporting}"] + list(extra)
    if arrival:
        head.append(f"Arrival-Date: {rfcdate()}")
    return part("message/delivery-status", "\n".join(head) + "\n\n" + "\n\n".join(fields) + "\n")


def field(a, action="failed", status="5.0.0", diag=None, remote=None, orig=None, sp="; ", dtype="smtp",
          last=False, extra=(), final=None, order="std", fold=True):
    """One per-recipient block of a delivery-status part."""
    orig = R.random() < 0.5 if orig is None else orig
    lines = []
    fr = final or f"rfc822{sp}{a}"
    if order == "ses":
        lines += [f"Action: {action}", f"Final-Recipient: {fr}"]
    else:
        if orig:
            lines.append(f"Original-Recipient: rfc822{sp}{a}")
        lines += [f"Final-Recipient: {fr}", f"Action: {action}"]
    lines.append(f"Status: {status}")
    if remote:
        lines.append(f"Remote-MTA: dns{sp}{remote}")
    if diag:
        d = f"Diagnostic-Code: {dtype}{sp}{diag}"
        lines.append(wrap(d, 78, " ") if fold and "\n" not in d else d)
    if last:
        lines.append(f"Last-Attempt-Date: {rfcdate()}")
    return "\n".join(lines + list(extra))


def headers(c, frm, subject, ctype=None, extra=(), via=None, via_ip=None, date=None, mime=True, rp="<>"):
    via = via or f"{R.choice(['relay', 'out', 'smtp', 'mta'])}{R.randint(1, 9)}.{R.choice(DOMAINS)}"
    via_ip = via_ip or doc_ip()
    date = date or rfcdate()
    lines = [f"Return-Path: {rp}",
             f"Received: from {via} ({via} [{via_ip}])\n\tby in2.{BD} (cartero) with ESMTPS id {hx(14)}\n"
             f"\tfor <{c.to}>; {date}",
             f"Date: {date}", f"From: {frm}", f"To: {c.to}", f"Subject: {subject}",
             f"Message-ID: {mid(via.split('.', 1)[-1])}"] + list(extra)
    if mime:
        lines.append("MIME-Version: 1.0")
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    return "\n".join(lines) + "\n"


def plain_msg(c, frm, subject, text, charset="us-ascii", cte=None, extra=(), mime=True, **kw):
    ex = list(extra) + ([f"Content-Transfer-Encoding: {CTES[cte]}"] if cte and mime else [])
    ctype = f"text/plain; charset={charset}" if mime else None
    return headers(c, frm, subject, ctype, ex, mime=mime, **kw) + "\n" + encode_body(text, charset, cte)


def multi_msg(c, frm, subject, parts, subtype="report; report-type=delivery-status", extra=(),
              preamble="This is a MIME-encapsulated message.", b=None, **kw):
    ctype, body = multipart(parts, subtype, b, preamble)
    return headers(c, frm, subject, ctype, extra, **kw) + "\n" + body


def row(c, eml, cls, kind="bounce", address=None, tok=None, lf=False):
    return {"eml": eml, "kind": kind, "addr": ",".join(c.rcpts) if address is None else address,
            "cls": str(cls), "tok": c.label_token() if tok is None else tok, "lf": lf}


def some_cte(weights=((None, 5), ("qp", 2), ("b64", 2))):
    return choose(list(weights))


# ================================================================ shared MTA layouts
def said(a, host, hip, reply, cmd="RCPT TO"):
    """Postfix's one-line account of a remote reply."""
    return wrap(f"<{a}>: host {host}[{hip}] said: {reply} (in reply to {cmd} command)", 74)


def pf_text(host, lines, mode="fail"):
    if mode == "delay":
        head = (f"This is the mail system at host {host}.\n\n"
                "####################################################################\n"
                "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
                "####################################################################\n\n"
                f"Your message could not be delivered for more than {R.choice(['3', '4', '6'])} hour(s).\n"
                f"It will be retried until it is {R.choice(['5', '3', '4'])} day(s) old.\n\n"
                "For further assistance, please send mail to postmaster.\n\n"
                "If you do so, please include this problem report. You can\n"
                "delete your own text from the attached returned message.\n\n")
    elif mode == "success":
        head = (f"This is the mail system at host {host}.\n\n"
                "Your message was successfully delivered to the destination(s)\n"
                "listed below. If the message was delivered to mailbox you will\n"
                "receive no further notifications. Otherwise you may still receive\n"
                "notifications of mail delivery errors from other systems.\n\n")
    else:
        head = (f"This is the mail system at host {host}.\n\n"
                "I'm sorry to have to inform you that your message could not\n"
                "be delivered to one or more recipients. It's attached below.\n\n"
                "For further assistance, please send mail to postmaster.\n\n"
                "If you do so, please include this problem report. You can\n"
                "delete your own text from the attached returned message.\n\n")
    return head + "                   The mail system\n\n" + "\n\n".join(lines) + "\n"


def postfix(c, lines, fields, host=None, mode="fail", how=None, cte=None, subject=None, frm=None):
    """A Postfix DSN: the human report, message/delivery-status and the returned message."""
    host = host or f"{R.choice(['relay', 'smtp-out', 'mx-out', 'mail'])}{R.randint(1, 9)}.{R.choice(DOMAINS)}"
    how = how or how_returned()
    lines = lines if isinstance(lines, list) else [lines]
    sender = f"b-{c.tok}@{BD}" if c.tok_to else SENDER
    parts = [text_part(pf_text(host, lines, mode), cte=cte, desc="Notification"),
             status_part(host, fields, [f"X-Postfix-Queue-ID: {hx(11)}", f"X-Postfix-Sender: rfc822; {sender}"])]
    parts += returned(c, how, "Undelivered Message" if how == "rfc822" else "Undelivered Message Headers")
    subject = subject or {"delay": "Delayed Mail (still being retried)", "success": "Successful Mail Delivery Report"
                          }.get(mode, "Undelivered Mail Returned to Sender")
    return multi_msg(c, frm or f"MAILER-DAEMON@{host} (Mail Delivery System)", subject, parts,
                     extra=["Auto-Submitted: auto-replied"], via=host)


def pf_relay(c, reply, status, remote, cmd="RCPT TO", delay=False, host=None, how=None, rhost_ip=None):
    """Our relay (Postfix) reporting one remote reply for every recipient of the case."""
    hip = rhost_ip or doc_ip("203.0.113")
    lines = [said(r, remote, hip, c.f(reply).replace(c.a, r), cmd) for r in c.rcpts]
    fields = [field(r, "delayed" if delay else "failed", status, c.f(reply).replace(c.a, r), remote) for r in c.rcpts]
    return postfix(c, lines, fields, host, "delay" if delay else "fail", how)


def exim_fail_text(blocks):
    return ("This message was created automatically by mail delivery software.\n\n"
            "A message that you sent could not be delivered to one or more of its\n"
            "recipients. This is a permanent error. The following address(es) failed:\n\n" + "\n".join(blocks))


def exim_remote_block(a, mxh, mip, cmd, reply_lines):
    rl = reply_lines if isinstance(reply_lines, list) else [reply_lines]
    return (f"  {a}\n    host {mxh} [{mip}]\n    SMTP error from remote mail server after {cmd}:\n" +
            "".join(f"    {l}\n" for l in rl))


def exim(c, host, blocks, fields=None, how=None, dsn=True, subject=None, cte=None):
    """Exim 4: plain text (older, `X-Failed-Recipients`) or multipart/report (4.8x and later)."""
    how = how or how_returned((("rfc822", 4), ("headers", 3), ("none", 1)))
    text = exim_fail_text(blocks)
    ex = [f"X-Failed-Recipients: {', '.join(c.rcpts)}", "Auto-Submitted: auto-replied"]
    frm = f"Mail Delivery System <Mailer-Daemon@{host}>"
    subject = subject or "Mail delivery failed: returning message to sender"
    if not dsn or fields is None:
        if how == "rfc822":
            text += "\n------ This is a copy of the message, including all the headers. ------\n\n" + original(c)
        elif how == "headers":
            text += "\n------ This is a copy of the message's headers. ------\n\n" + original(c, headers_only=True)
        return plain_msg(c, frm, subject, text, cte=cte, extra=ex, via=host)
    b = f"{R.randint(1700000000, 1760000000)}-eximdsn-{R.randint(10**8, 10**9)}"
    parts = [text_part(text, "us-ascii", cte), status_part(host, fields, arrival=True)]
    if how == "rfc822":
        parts.append(part("message/rfc822", original(c)))
    elif how == "headers":
        parts.append(part("text/rfc822-headers", original(c, headers_only=True)))
    return multi_msg(c, frm, subject, parts, extra=ex, b=b, preamble=None, via=host)


def exim_field(a, reply_lines, mxh, status="5.0.0", action="failed"):
    rl = reply_lines if isinstance(reply_lines, list) else [reply_lines]
    return field(a, action, status, "\n ".join(rl), mxh, orig=False, fold=len(rl) == 1)


def sm_text(fatal=None, transcript="", warning=False, received=None):
    rec = received or f"app2.{SENDER_DOMAIN} [192.0.2.11]"
    s = ""
    if warning:
        s += ("**********************************************\n**      THIS IS A WARNING MESSAGE ONLY      **\n"
              "**  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n**********************************************\n\n")
    s += f"The original message was received at {rfcdate()}\nfrom {rec}\n\n"
    if fatal:
        s += "   ----- The following addresses had permanent fatal errors -----\n" + fatal + "\n"
    return s + "   ----- Transcript of session follows -----\n" + transcript


def sendmail(c, host, text, fields, subject="Returned mail: see transcript for details", how=None, cte=None):
    how = how or how_returned((("rfc822", 4), ("headers", 3), ("none", 1)))
    qid = f"{hx(2, string.ascii_lowercase)}{R.randint(1, 9)}{hx(2, string.ascii_uppercase)}{R.randint(100000, 999999)}"
    b = f"{qid}.{R.randint(1700000000, 1760000000)}/{host}"
    parts = [text_part(text, cte=cte),
             status_part(host, fields, [f"Received-From-MTA: DNS; app2.{SENDER_DOMAIN}"], sp="; ")]
    parts += returned(c, how)
    ex = ["Auto-Submitted: auto-generated (failure)" if "Warning" not in subject else "Auto-Submitted: auto-generated (warning-timeout)"]
    return multi_msg(c, f"Mail Delivery Subsystem <MAILER-DAEMON@{host}>", subject, parts, b=b, extra=ex, via=host)


def sm_field(a, action, status, diag=None, remote=None, extra=()):
    return field(a, action, status, diag, remote, orig=False, sp="; ", dtype="SMTP", last=True,
                 extra=extra).replace("rfc822; ", "RFC822; ").replace("Remote-MTA: dns;", "Remote-MTA: DNS;")


def ex_html(paras, title):
    """Exchange 2010-2019 style HTML body (one <p> per paragraph)."""
    body = "".join(f"<p>{html_escape(p).replace(chr(10), '<br>' + chr(10))}</p>\n" for p in paras if p)
    return ("<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=us-ascii\">\n"
            "<title>DSN</title>\n</head>\n<body>\n"
            f"<p><b><font color=\"#000066\" size=\"3\" face=\"Arial\">{html_escape(title)}</font></b></p>\n"
            f"<font color=\"#000000\" size=\"2\" face=\"Tahoma\">\n{body}</font>\n</body>\n</html>\n")


def exchange(c, srv, human, diag_line, st, ds_diag=None, remote=None, org_line=None, hdrs=True, html=True,
             delayed=False, frm=None, subject=None, how=None, version="2016", extra_fields=()):
    """Exchange 2007-2019 NDR: text (+ HTML) alternative, delivery-status, original."""
    head = ("Delivery is delayed to these recipients or groups:" if delayed else
            "Delivery has failed to these recipients or groups:")
    paras = [head, f"{c.a}\n{human}"]
    if org_line:
        paras.append(org_line)
    gen = f"Generating server: {srv}"
    if remote and version != "2007":
        gen += f"\nReceiving server: {remote} ({c.rip})"
    paras += ["Diagnostic information for administrators:", gen, f"{c.a}\n{diag_line}"]
    if version != "2007":
        paras[-1] += f"\n{usdate()}"
    text = "\n\n".join(paras) + "\n"
    if version == "2007":
        text = text.replace(f"{human}\n\n", f"{human}\n\n\n\n\n\n\n")
    if hdrs:
        text += "\nOriginal message headers:\n\n" + original(c, headers_only=True)
    cte = some_cte(((None, 1), ("qp", 3), ("b64", 1)))
    body = nested([text_part(text, cte=cte), html_part(ex_html(paras, head), "us-ascii", "qp")], "alternative") \
        if html else text_part(text, cte=cte)
    f = field(c.a, "delayed" if delayed else "failed", st, ds_diag, remote, orig=False, sp=";",
              extra=[f"X-Display-Name: {c.local.split('.')[0].rstrip(string.digits).capitalize()}"] + list(extra_fields))
    parts = [body, status_part(srv, [f], [f"Received-From-MTA: dns;{OUR_MTA}"], sp=";")]
    parts += returned(c, how or how_returned((("rfc822", 4), ("headers", 3), ("none", 2))))
    org = srv.split(".", 1)[1]
    frm = frm or choose([(f"Microsoft Exchange <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@{org}>", 2),
                         (f"postmaster@{org}", 1), (f"Mail Delivery System <MAILER-DAEMON@{org}>", 1)])
    subject = subject or (f"Delivery delayed:{c.osubj}" if delayed else f"Undeliverable: {c.osubj}")
    return multi_msg(c, frm, subject, parts, preamble=None, via=srv,
                     extra=["Content-Language: en-US", "X-MS-Has-Attach: yes", "X-MS-Exchange-Message-Is-Ndr:",
                            f"Thread-Topic: {c.osubj}", "X-MS-Exchange-Organization-SCL: -1"])


def o365_server():
    return (f"{R.choice(['AM6PR', 'DB9PR', 'PAXPR', 'BY5PR', 'CH2PR', 'SJ0PR', 'MW4PR'])}{R.randint(1, 9):02}MB"
            f"{R.randint(1000, 9999)}.{R.choice(['eurprd02', 'eurprd05', 'eurprd08', 'namprd04', 'namprd11', 'namprd20'])}"
            ".prod.outlook.com")


def o365(c, summary, title, fix, code, err, expl="", remote=None, newer=None, who="Recipient", how=None,
         html_only=False, st=None):
    """Exchange Online "Your message to x couldn't be delivered." NDR, text + HTML, with a DSN."""
    srv = o365_server()
    made = when()
    newer = R.random() < 0.5 if newer is None else newer
    err = c.f(err.replace("{srv}", srv))
    details = ([("Error:", err), ("Message rejected by:", remote or srv)] if newer else
               [("Reported error:", err), ("DSN generated by:", srv)] + ([("Remote server:", remote)] if remote else []))
    orig_rows = [("Created Date:", usdate(made)), ("Sender Address:", SENDER), ("Recipient Address:", c.a),
                 ("Subject:", c.osubj)]
    hops = [("1", usdate(made), OUR_MTA, srv.replace("MB", "MB0", 1), "Microsoft SMTP Server (version=TLS1_3, "
             "cipher=TLS_AES_256_GCM_SHA384)", "1 sec"),
            ("2", usdate(made), srv.replace("MB", "MB0", 1), srv, "Microsoft SMTP Server (version=TLS1_2, "
             "cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)", "*")]
    summary, fix, expl = c.f(summary), c.f(fix), c.f(expl)
    text = (f"Your message to {c.a} couldn't be delivered.\n\n{summary}\n\n"
            f"news        Office 365        {c.local if who == 'Recipient' else 'Sender'}\n"
            f"Action Required                 {who}\n\n{title}\n\nHow to Fix It\n{fix}\n\n"
            "Was this helpful? Send feedback to Microsoft<https://go.microsoft.com/fwlink/?LinkId=525921>.\n\n"
            "________________________________\n\nMore Info for Email Admins\n"
            f"Status code: {code}\n\n" + (expl + "\n\n" if expl else "") +
            "Original Message Details\n" + "".join(f"{k}\t{v}\n" for k, v in orig_rows) +
            "\nError Details\n" + "".join(f"{k}\t{v}\n" for k, v in details) +
            "\nMessage Hops\nHOP\tTIME (UTC)\tFROM\tTO\tWITH\tRELAY TIME\n" +
            "".join("\t".join(h) + "\n" for h in hops))
    td = lambda k, v: (f"<tr><td style=\"font-size:14px;color:#666666;padding:2px 10px 2px 0\">{html_escape(k)}</td>"
                       f"<td style=\"font-size:14px;color:#000000\"><em>{html_escape(v)}</em></td></tr>\n")
    html = ("<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\n</head>\n"
            "<body dir=\"ltr\">\n<div style=\"background-color:white;font-family:'Segoe UI',Frutiger,Arial\">\n"
            f"<p style=\"font-size:20px;color:#666666\">Your message to <span style=\"color:#C00000\">"
            f"{html_escape(c.a)}</span> couldn't be delivered.</p>\n"
            f"<p style=\"font-size:16px\">{html_escape(summary)}</p>\n"
            "<table cellspacing=\"0\" cellpadding=\"0\" border=\"0\" width=\"100%\"><tr>\n"
            "<td style=\"font-size:15px;color:#333333\">news</td><td style=\"font-size:15px\">Office 365</td>"
            f"<td style=\"font-size:15px;color:#C00000\">{html_escape(c.local) if who == 'Recipient' else 'Sender'}</td>"
            "</tr>\n<tr><td style=\"font-size:14px\">Action Required</td><td></td>"
            f"<td style=\"font-size:14px\">{who}</td></tr></table>\n"
            f"<p style=\"font-size:17px;font-weight:bold\">{html_escape(title)}</p>\n"
            "<p style=\"font-size:17px;font-weight:bold\">How to Fix It</p>\n"
            f"<p style=\"font-size:15px\">{html_escape(fix).replace(chr(10), '<br>')}</p>\n<hr>\n"
            "<p style=\"font-size:17px;font-weight:bold\">More Info for Email Admins</p>\n"
            f"<p style=\"font-size:14px\"><em>Status code: {html_escape(code)}</em></p>\n" +
            (f"<p style=\"font-size:14px\">{html_escape(expl)}</p>\n" if expl else "") +
            "<p style=\"font-size:15px;font-weight:bold\">Original Message Details</p>\n<table>\n" +
            "".join(td(k, v) for k, v in orig_rows) + "</table>\n"
            "<p style=\"font-size:15px;font-weight:bold\">Error Details</p>\n<table>\n" +
            "".join(td(k, v) for k, v in details) + "</table>\n"
            "<p style=\"font-size:15px;font-weight:bold\">Message Hops</p>\n<table>\n"
            "<tr><th>HOP</th><th>TIME (UTC)</th><th>FROM</th><th>TO</th><th>WITH</th><th>RELAY TIME</th></tr>\n" +
            "".join("<tr>" + "".join(f"<td>{html_escape(x)}</td>" for x in h) + "</tr>\n" for h in hops) +
            "</table>\n</div>\n</body>\n</html>\n")
    st = st or code.split()[1]
    ds = field(c.a, "failed", st, err, remote, orig=False, sp=";", extra=[f"X-Display-Name: {c.local}"])
    if html_only:
        first = html_part(html, "utf-8", "qp")
    else:
        first = nested([text_part(text, "utf-8", some_cte(((None, 1), ("qp", 3), ("b64", 2)))),
                        html_part(html, "utf-8", some_cte(((None, 1), ("qp", 3), ("b64", 1))))], "alternative")
    parts = [first, status_part(srv, [ds], [f"Received-From-MTA: dns;{OUR_MTA}"], sp=";")]
    parts += returned(c, how or how_returned((("rfc822", 3), ("headers", 4), ("none", 1))))
    return multi_msg(c, f"Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@{c.d}>"
                     if R.random() < 0.7 else f"Microsoft Outlook <postmaster@{c.d}>",
                     f"Undeliverable: {c.osubj}", parts, preamble=None, via=srv.replace("MB", "MB0", 1),
                     extra=["Content-Language: en-US", "X-MS-Exchange-Message-Is-Ndr:", "X-MS-PublicTrafficType: Email",
                            f"Thread-Topic: {c.osubj}", f"X-MS-Exchange-CrossTenant-Id: {hx(8, 'abcdef0123456789')}-"
                            f"{hx(4, 'abcdef0123456789')}-{hx(4, 'abcdef0123456789')}-{hx(12, 'abcdef0123456789')}"])


# ---------------------------------------------------------------- Gmail
GID = lambda: f"{lc(2)}{R.randint(1, 99)}-{lc(11)}.{R.randint(100, 999)}"


def gml(code, st, lines, gsmtp=True):
    """Google's multi-line reply: code-status continuation lines, last line with a space."""
    lines = list(lines)
    if gsmtp:
        lines[-1] += f" {GID()} - gsmtp"
    return [f"{code}-{st} {l}" for l in lines[:-1]] + [f"{code} {st} {lines[-1]}"]


def gmail(c, title, body, st, diag, action="failed", remote=None, subject=None, how=None, style=None):
    """Gmail / Google Workspace as the reporting side."""
    style = style or choose([("new", 6), ("plain", 2)])
    subject = subject or ("Delivery Status Notification (Delay)" if action == "delayed" else
                          "Delivery Status Notification (Failure)")
    human = (f"** {title} **\n\n" if title else "") + body
    frm = "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"
    via = f"mail-{R.choice(['sor', 'yw1', 'pl1', 'ej1'])}-f{R.randint(41, 199)}.google.com"
    if style == "plain":
        text = human + "\n----- Original message -----\n\n" + original(c, headers_only=True)
        return plain_msg(c, frm, subject, text, "UTF-8", some_cte(((None, 2), ("qp", 1))),
                         ["Auto-Submitted: auto-replied"], via=via)
    paras = human.split("\n\n")
    html = ("<html>\n<head>\n<style>\n* body { font-family:Roboto,Helvetica,Arial,sans-serif; }\n</style>\n</head>\n"
            "<body>\n<table cellpadding=\"0\" cellspacing=\"0\" class=\"email-wrapper\" style=\"padding-top:32px;"
            "background-color:#ffffff;\"><tbody>\n<tr><td>\n<table cellpadding=0 cellspacing=0><tbody>\n"
            "<tr><td style=\"max-width:560px;padding:24px 24px 32px;background-color:#fafafa;border:1px solid #e0e0e0;"
            "border-radius:2px\">\n<img style=\"padding:0 24px 16px 0;float:left\" width=72 height=72 alt=\"Error "
            "Icon\" src=\"cid:icon.png\">\n" +
            (f"<table style=\"min-width:272px;padding-top:8px\"><tbody><tr><td><h2 style=\"font-size:20px;color:"
             f"#212121;font-weight:bold;margin:0\">{html_escape(title)}</h2></td></tr>\n" if title else
             "<table style=\"min-width:272px;padding-top:8px\"><tbody>\n") +
            "".join(f"<tr><td style=\"padding-top:20px;color:#757575;font-size:16px;font-weight:normal;text-align:"
                    f"left\">{html_escape(p).replace(chr(10), '<br>')}</td></tr>\n" for p in paras[1 if title else 0:]) +
            "</tbody></table>\n</td></tr>\n</tbody></table>\n</td></tr>\n</tbody></table>\n</body>\n</html>\n")
    alt = nested([text_part(human, "UTF-8", some_cte(((None, 2), ("qp", 2)))), html_part(html, "UTF-8", "qp")],
                 "alternative")
    if R.random() < 0.6:
        png = base64.b64encode(bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) +
                               bytes(R.randint(0, 255) for _ in range(90))).decode()
        first = nested([alt,
                        "Content-Type: image/png; name=\"icon.png\"\nContent-Disposition: attachment; "
                        "filename=\"icon.png\"\nContent-Transfer-Encoding: base64\nContent-ID: <icon.png>\n\n" + png + "\n"],
                       "related")
    else:
        first = alt
    flds = [field(r, action, st, diag, remote, orig=False, last=True, fold=False) for r in c.rcpts]
    parts = [first, status_part("googlemail.com", flds, [f"Received-From-MTA: dns; {SENDER}",
                                                         f"X-Original-Message-ID: {c.mid}"])]
    parts += returned(c, how or how_returned((("rfc822", 3), ("headers", 3), ("none", 1))))
    return multi_msg(c, frm, subject, parts, preamble=None, via=via, b=hx(28, "0123456789abcdef"),
                     extra=["Auto-Submitted: auto-replied", "X-Failed-Recipients: " + ", ".join(c.rcpts)]
                     if action == "failed" else ["Auto-Submitted: auto-replied"])


def g_remote(c):
    return f"{c.mx}. ({c.rip}, the server for the domain {c.d}.)"


def f_gmail():
    rows = []
    GIN = lambda: R.choice(["gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com",
                            "alt2.gmail-smtp-in.l.google.com", "aspmx.l.google.com", "alt3.aspmx.l.google.com"])
    nosuch = ["The email account that you tried to reach does not exist. Please try",
              "double-checking the recipient's email address for typos or",
              "unnecessary spaces. For more information, go to",
              " https://support.google.com/mail/?p=NoSuchUser"]
    # 1. Workspace relay reporting a remote 550-5.1.1 with continuation lines (new layout)
    c = Case()
    ml = gml("550", "5.1.1", nosuch)
    body = (f"Your message wasn't delivered to {c.a} because the address couldn't be found, or is unable to receive "
            "mail.\n\nLearn more here: https://support.google.com/mail/?p=NoSuchUser\n\nThe response was:\n\n" + "\n".join(ml) + "\n")
    rows.append(row(c, gmail(c, "Address not found", body, "5.1.1", "\n ".join(ml), remote=g_remote(c)), 10))
    # 2. our Postfix relay quoting Google's 550-5.1.1 (continuation lines joined into one)
    c = Case(domains=["example.com", "workspace.example", "clients.test"])
    ml = " ".join(gml("550", "5.1.1", nosuch))
    rows.append(row(c, postfix(c, said(c.a, GIN(), doc_ip("203.0.113"), ml), [field(c.a, "failed", "5.1.1", ml, GIN())]), 10))
    # 3. Exim relay: each continuation line on its own line
    c = Case(domains=["example.org", "workspace.example"])
    ml = gml("550", "5.1.1", nosuch)
    h, g = f"mx-out{R.randint(1, 4)}.{R.choice(DOMAINS)}", GIN()
    rows.append(row(c, exim(c, h, [exim_remote_block(c.a, g, doc_ip("203.0.113"), f"RCPT TO:<{c.a}>", ml)],
                            [exim_field(c.a, ml, g)]), 10))
    # 4. 5.2.1 disabled (Gmail reporter)
    c = Case()
    ml = gml("550", "5.2.1", ["The email account that you tried to reach is disabled. Learn more at",
                              " https://support.google.com/mail/?p=DisabledUser"])
    body = (f"Your message wasn't delivered to {c.a} because the address couldn't be found, or is unable to receive "
            "mail.\n\nThe response from the remote server was:\n" + "\n".join(ml) + "\n")
    rows.append(row(c, gmail(c, "Address not found", body, "5.2.1", "\n ".join(ml), remote=g_remote(c)), 10))
    # 5. 5.2.1 disabled via our sendmail relay
    c = Case(domains=["example.net", "workspace.example"])
    ml = gml("550", "5.2.1", ["The email account that you tried to reach is disabled. Learn more at",
                              " https://support.google.com/mail/?p=DisabledUser"])
    g, h = GIN(), f"smtp{R.randint(1, 5)}.{R.choice(DOMAINS)}"
    tr = f"... while talking to {g}.:\n>>> DATA\n" + "".join(f"<<< {l}\n" for l in ml) + f"550 5.2.1 <{c.a}>... User unknown\n"
    rows.append(row(c, sendmail(c, h, sm_text(f"<{c.a}>\n    (reason: 550-5.2.1 The email account that you tried to reach is disabled.)\n", tr),
                                [sm_field(c.a, "failed", "5.2.1", " ".join(ml), g)]), 10))
    # 6. 4.2.2 over quota (temporary) as a Postfix delay
    c = Case(domains=["example.com", "workspace.example"])
    ml = " ".join(gml("452", "4.2.2", ["The recipient's inbox is out of storage space. Please direct the",
                                         "recipient to", " https://support.google.com/mail/?p=OverQuotaTemp"]))
    rows.append(row(c, postfix(c, said(c.a, GIN(), doc_ip("203.0.113"), ml, "RCPT TO"),
                               [field(c.a, "delayed", "4.2.2", ml, GIN())], mode="delay"), 22))
    # 7. 5.2.2 over quota (Gmail reporter)
    c = Case()
    ml = gml("552", "5.2.2", ["The recipient's inbox is out of storage space and inactive. Please direct",
                              "the recipient to", " https://support.google.com/mail/?p=OverQuotaPerm"])
    body = (f"Your message couldn't be delivered to {c.a} because the remote server's inbox is full.\n\n"
            "The response from the remote server was:\n" + "\n".join(ml) + "\n")
    rows.append(row(c, gmail(c, "Message not delivered", body, "5.2.2", "\n ".join(ml), remote=g_remote(c)), 22))
    # 8. 5.7.26 unauthenticated (2024 wording) via Postfix
    c = Case(domains=["example.org", "example.net"])
    ml = " ".join(gml("550", "5.7.26", [
        "This mail has been blocked because the sender is unauthenticated.",
        "Gmail requires all senders to authenticate with either SPF or DKIM.", "",
        f" Authentication results:", f" DKIM = did not pass",
        f" SPF [{SENDER_DOMAIN}] with ip: [{OUR_IP}] = did not pass", "",
        " For instructions on setting up authentication, go to",
        " https://support.google.com/mail/answer/81126#authentication"]))
    rows.append(row(c, postfix(c, said(c.a, GIN(), doc_ip("203.0.113"), ml, "end of DATA"),
                               [field(c.a, "failed", "5.7.26", ml, GIN())]), 50))
    # 9. 5.7.26 DMARC policy, Gmail reporter (plain layout)
    c = Case()
    ml = gml("550", "5.7.26", [f"Unauthenticated email from {SENDER_DOMAIN} is not accepted due to domain's",
                               f"DMARC policy. Please contact the administrator of {SENDER_DOMAIN} domain",
                               "if this was a legitimate mail. To learn about the DMARC initiative, go to",
                               " https://support.google.com/mail/?p=DmarcRejection"])
    body = (f"There was a problem delivering your message to {c.a}. See the technical details below.\n\n"
            "The response was:\n\n" + "\n".join(ml) + "\n")
    rows.append(row(c, gmail(c, "Message blocked", body, "5.7.26", "\n ".join(ml), remote=g_remote(c), style="plain"), 50))
    # 10. 5.7.1 likely unsolicited via Exim
    c = Case(domains=["example.com", "workspace.example"])
    ml = gml("550", "5.7.1", [f"[{OUR_IP}      12] Gmail has detected that this message",
                              "is likely unsolicited mail. To reduce the amount of spam sent to Gmail,",
                              "this message has been blocked. For more information, go to",
                              " https://support.google.com/mail/?p=UnsolicitedMessageError"])
    g, h = GIN(), f"out{R.randint(1, 9)}.{R.choice(DOMAINS)}"
    rows.append(row(c, exim(c, h, [exim_remote_block(c.a, g, doc_ip("203.0.113"), "end of data", ml)],
                            [exim_field(c.a, ml, g)]), 52))
    # 11. 421-4.7.28 unusual rate, Postfix delay
    c = Case(domains=["example.org", "workspace.example"])
    ml = " ".join(gml("421", "4.7.28", [f"Gmail has detected an unusual rate of unsolicited mail. To protect",
                                        "our users from spam, mail has been temporarily rate limited. For more",
                                        "information, go to",
                                        " https://support.google.com/mail/?p=UnsolicitedRateLimitError"]))
    g = GIN()
    rows.append(row(c, postfix(c, said(c.a, g, doc_ip("203.0.113"), ml, "end of DATA"),
                               [field(c.a, "delayed", "4.7.28", ml, g)], mode="delay"), 51))
    # 12. 421-4.7.0 unusual rate (older wording), Gmail reporter delay
    c = Case()
    ml = gml("421", "4.7.0", [f"[{OUR_IP}      15] Our system has detected an unusual rate of",
                              "unsolicited mail originating from your IP address. To protect our",
                              "users from spam, mail sent from your IP address has been temporarily",
                              "rate limited. Please visit",
                              " https://support.google.com/mail/?p=UnsolicitedRateLimitError to",
                              "review our Bulk Email Senders Guidelines."])
    body = (f"There was a temporary problem delivering your message to {c.a}. Gmail will retry for 45 more hours. "
            "You'll be notified if the delivery fails permanently.\n\nThe response was:\n\n" + "\n".join(ml) + "\n")
    rows.append(row(c, gmail(c, "Delivery incomplete", body, "4.7.0", "\n ".join(ml), "delayed", g_remote(c)), 51))
    # 13. 421-4.7.0 try again later, closing connection (Postfix delay, before greeting)
    c = Case(domains=["workspace.example", "example.net"])
    ml = " ".join(gml("421", "4.7.0", ["Try again later, closing connection. (EHLO)"]))
    g = GIN()
    rows.append(row(c, postfix(c, wrap(f"<{c.a}>: host {g}[{doc_ip('203.0.113')}] refused to talk to me: {ml}", 74),
                               [field(c.a, "delayed", "4.7.0", ml, g)], mode="delay"), 70))
    # 14. 552-5.7.0 security issue (attachment), Gmail reporter
    c = Case()
    ml = gml("552", "5.7.0", ["This message was blocked because its content presents a potential",
                              "security issue. Please visit",
                              " https://support.google.com/mail/?p=BlockedMessage to review our",
                              "message content and attachment content guidelines."])
    body = (f"There was a problem delivering your message to {c.a}. See the technical details below.\n\n"
            "The response was:\n\n" + "\n".join(ml) + "\n")
    rows.append(row(c, gmail(c, "Message blocked", body, "5.7.0", "\n ".join(ml), remote=g_remote(c)), 53))
    # 15. 550-5.7.25 no PTR, Postfix
    c = Case(domains=["example.com", "example.org"])
    ml = " ".join(gml("550", "5.7.25", [f"[{OUR_IP}] The IP address sending this message does not have a",
                                        "PTR record setup, or the corresponding forward DNS entry does not",
                                        "point to the sending IP. As a policy, Gmail does not accept messages",
                                        "from IPs with missing PTR records. For more information, go to",
                                        " https://support.google.com/mail/answer/81126#ip-practices"]))
    g = GIN()
    rows.append(row(c, postfix(c, said(c.a, g, doc_ip("203.0.113"), ml, "end of DATA"), [field(c.a, "failed", "5.7.25", ml, g)]), 50))
    # 16. 552-5.2.3 size limit, Gmail reporter
    c = Case()
    ml = gml("552", "5.2.3", ["Your message exceeded Google's message size limits. For more",
                              "information, go to", " https://support.google.com/mail/?p=MaxSizeError"])
    body = (f"Your message couldn't be delivered to {c.a} because it is too large.\n\n"
            "The response was:\n\n" + "\n".join(ml) + "\n")
    rows.append(row(c, gmail(c, "Message too large", body, "5.2.3", "\n ".join(ml), remote=g_remote(c)), 23))
    # 17. "has been delayed" without any code or technical detail (old layout, plain)
    c = Case()
    body = ("This is an automatically generated Delivery Status Notification\n\nTHIS IS A WARNING MESSAGE ONLY.\n\n"
            "YOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\nDelivery to the following recipient has been delayed:\n\n"
            f"     {c.a}\n\nMessage will be retried for 2 more day(s)\n")
    rows.append(row(c, gmail(c, None, body, "4.0.0", None, "delayed", style="plain"), 70))
    # 18. gave up after retrying, no code
    c = Case()
    body = (f"Delivery to the following recipient failed permanently:\n\n     {c.a}\n\n"
            "Technical details of permanent failure:\nGoogle tried to deliver your message, but the recipient's "
            "server kept answering with a temporary failure, and Gmail gave up after retrying for 3 days.\n")
    rows.append(row(c, gmail(c, None, body, "4.4.7", None, subject="Delivery Status Notification (Failure)"), 24))
    # 19. DNS Error: Domain name not found (older wording)
    c = Case(domains=["no-such-domain.example", "typo-mail.test", "expired-brand.example"])
    body = (f"Delivery to the following recipient failed permanently:\n\n     {c.a}\n\n"
            "Technical details of permanent failure:\nDNS Error: Domain name not found\n")
    rows.append(row(c, gmail(c, None, body, "5.1.2", None, style="plain"), 21))
    # 20. DNS Error: NXDOMAIN (new layout)
    c = Case(domains=["no-such-domain.example", "gone-away.test"])
    body = (f"Your message wasn't delivered to {c.a} because the domain {c.d} couldn't be found. Check for typos or "
            "unnecessary spaces and try again.\n\nThe response was:\n\n"
            f"DNS Error: {R.randint(1000000, 99999999)} DNS type 'mx' lookup of {c.d} responded with code NXDOMAIN\n"
            f"Domain name not found: {c.d}\nLearn more at https://support.google.com/mail/?p=BadRcptDomain\n")
    rows.append(row(c, gmail(c, "Address not found", body, "5.1.2", None), 21))
    # 21. DNS SERVFAIL, delivery incomplete (delay)
    c = Case(domains=["broken-dns.example", "lame.test"])
    body = (f"There was a temporary problem delivering your message to {c.a}. Gmail will retry for 46 more hours. "
            "You'll be notified if the delivery fails permanently.\n\nThe response was:\n\n"
            f"DNS Error: {R.randint(1000000, 99999999)} DNS type 'mx' lookup of {c.d} responded with code SERVFAIL\n")
    rows.append(row(c, gmail(c, "Delivery incomplete", body, "4.4.3", None, "delayed"), 21))
    # 22. 550-5.7.1 policy prohibited / IP not authorized to send directly
    c = Case(domains=["workspace.example", "example.org"])
    ml = " ".join(gml("550", "5.7.1", [f"[{OUR_IP}] The IP you're using to send mail is not authorized to",
                                       "send email directly to our servers. Please use the SMTP relay at your",
                                       "service provider instead. For more information, go to",
                                       " https://support.google.com/mail/?p=NotAuthorizedError"]))
    g = GIN()
    rows.append(row(c, postfix(c, said(c.a, g, doc_ip("203.0.113"), ml, "MAIL FROM"), [field(c.a, "failed", "5.7.1", ml, g)]), 50))
    return rows


# ---------------------------------------------------------------- Microsoft (Outlook.com / Hotmail / Exchange Online)
def olc():
    return R.choice(["hotmail-com.olc.protection.outlook.com", "outlook-com.olc.protection.outlook.com",
                     "msn-com.olc.protection.outlook.com", "live-com.olc.protection.outlook.com"])


def eop(c):
    return f"{c.d.replace('.', '-')}.mail.protection.outlook.com"


def eop_tag():
    return (f"[{R.choice(['AM4PEPF', 'DU6PEPF', 'BN1PEPF', 'SA2PEPF'])}{hx(8)}."
            f"{R.choice(['eurprd04', 'eurprd03', 'namprd02', 'namprd05'])}.prod.outlook.com "
            f"2025-{R.randint(1, 12):02}-{R.randint(1, 28):02}T{R.randint(0, 23):02}:{R.randint(0, 59):02}:"
            f"{R.randint(0, 59):02}.{R.randint(1000000, 9999999)}Z {hx(8)}]")


def f_microsoft():
    rows = []
    # --- Outlook.com / Hotmail replies reported by our relays
    c = Case()
    r = f"550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). {eop_tag()}"
    rows.append(row(c, pf_relay(c, r, "5.5.0", olc()), 10))
    c = Case()
    o = olc()
    ml = [f"550 5.5.0 Requested action not taken: mailbox unavailable. [{R.choice(['CO1NAM11FT045', 'DB1PEPF000509E8', 'BN2PEPF000044A7'])}"
          f".{R.choice(['eop-nam11', 'eurprd05', 'namprd04'])}.prod.protection.outlook.com]"]
    rows.append(row(c, exim(c, f"mail{R.randint(1, 9)}.{R.choice(DOMAINS)}",
                            [exim_remote_block(c.a, o, doc_ip("203.0.113"), f"RCPT TO:<{c.a}>", ml)],
                            [exim_field(c.a, ml, o)]), 10))
    c = Case()
    r = (f"550 5.7.1 Unfortunately, messages from [{OUR_IP}] weren't sent. Please contact your Internet service provider "
         "since part of their network is on our block list (S3150). You can also refer your provider to "
         "http://mail.live.com/mail/troubleshooting.aspx#errors. [Name=Protocol Filter Agent][AGT=PFA]"
         f"[MxId={hx(16)}] {eop_tag()}")
    rows.append(row(c, pf_relay(c, r, "5.7.1", olc(), "MAIL FROM"), 51))
    c = Case()
    o, h = olc(), f"mailhost.{R.choice(DOMAINS)}"
    r = (f"550 5.7.1 Unfortunately, messages from [{OUR_IP}] weren't sent. Please contact your Internet service provider "
         "since part of their network is on our block list (S3140). You can also refer your provider to "
         "http://mail.live.com/mail/troubleshooting.aspx#errors.")
    tr = f"... while talking to {o}.:\n>>> MAIL From:<{SENDER}> SIZE={R.randint(4000, 90000)}\n<<< {r}\n554 5.0.0 Service unavailable\n"
    rows.append(row(c, sendmail(c, h, sm_text(f"<{c.a}>\n    (reason: 550 5.7.1 Unfortunately, messages from [{OUR_IP}] weren't sent.)\n", tr),
                                [sm_field(c.a, "failed", "5.7.1", r, o)], "Returned mail: Service unavailable"), 51))
    c = Case()
    r = (f"451 4.7.650 The mail server [{OUR_IP}] has been temporarily rate limited due to IP reputation. For e-mail "
         f"delivery information, see https://postmaster.live.com (S775) {eop_tag()}")
    rows.append(row(c, pf_relay(c, r, "4.7.650", olc(), "MAIL FROM", delay=True), 51))
    c = Case()
    r = f"451 4.7.500 Server busy. Please try again later from [{OUR_IP}]. (S77714) {eop_tag()}"
    rows.append(row(c, pf_relay(c, r, "4.7.500", olc(), "MAIL FROM", delay=True), 70))
    c = Case()
    r = ("550 5.7.515 Access denied, sending domain [" + SENDER_DOMAIN.upper() + "] does not meet the required "
         "authentication level. The sender's domain in the 5322.From address doesn't meet the authentication "
         "requirements defined for the sender. To learn more see https://go.microsoft.com/fwlink/?linkid=2319608 "
         + eop_tag())
    rows.append(row(c, pf_relay(c, r, "5.7.515", olc(), "end of DATA"), 50))
    c = Case()
    r = (f"550 5.7.1 Service unavailable, Client host [{OUR_IP}] blocked using Spamhaus. To request removal from this "
         f"list see https://www.spamhaus.org/query/ip/{OUR_IP} (AS3130). {eop_tag()}")
    rows.append(row(c, pf_relay(c, r, "5.7.1", olc(), "MAIL FROM"), 51))
    # --- Exchange Online, classic "Delivery has failed" layout
    c = Case(domains=["contoso-like.example", "example.com", "corp.example"])
    srv = o365_server()
    rows.append(row(c, exchange(c, srv, "Your message couldn't be delivered to the recipient because the address "
                                "doesn't exist. Check the address and try again.",
                                "Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'", "5.1.1",
                                "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"), 10))
    # --- Exchange Online enhanced NDRs
    V = [  # (summary, title, fix, code, error, explanation, remote, class, case mode)
        ("{u} wasn't found at {d}.", "Unknown To address",
         "The address may be misspelled or may not exist. Try one or more of the following:\n\n- Retype the "
         "recipient's address, then resend the message.\n- If you're using the Auto-Complete List, remove the "
         "recipient from it and type the address again.",
         "550 5.1.1", "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found", "", None, 10, None),
        ("{u} wasn't found at {d}.", "Unknown To address",
         "The address may be misspelled or may not exist. Check the address and resend the message.",
         "550 5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient {a} not found by SMTP address lookup",
         "This error occurs because the sender sent a message to an email address hosted by Office 365 but the "
         "address is incorrect or doesn't exist at the destination domain.", None, 10, None),
        ("{u} wasn't found at {d}.", "Unknown To address",
         "Check the recipient's address and resend the message.",
         "550 5.4.1", "550 5.4.1 Recipient address rejected: Access denied. For more information see "
                      "https://aka.ms/EXOSmtpErrors [{srv}]",
         "The recipient's domain uses Directory Based Edge Blocking and the address isn't in its directory.", "eop", 10, None),
        ("Your message couldn't be delivered because your email server's IP address is on a block list.",
         "Sending IP blocked", "Ask your email admin to request delisting of the sending IP.",
         "550 5.7.606", "550 5.7.606 Access denied, banned sending IP [{sip}]. To request removal from this list "
                        "please visit https://sender.office.com/ and follow the directions. For more information "
                        "please go to http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) [{srv}]", "", "eop", 51, None),
        ("Your message wasn't delivered because the recipient's email provider rejected it.", "Sending IP blocked",
         "Contact the recipient's email admin and ask them to remove your IP from their block list.",
         "550 5.7.1", "550 5.7.1 Service unavailable, Client host [{sip}] blocked using Customer Block list "
                      "(AS16012607). To request removal from this list please forward this message to "
                      "delist@messaging.microsoft.com. [{srv}]", "", "eop", 51, None),
        ("Your message wasn't delivered because the recipient's email provider rejected it.", "Sender",
         "Ask your email admin to publish a DMARC record that your mail passes, or to align SPF and DKIM.",
         "550 5.7.509", "550 5.7.509 Access denied, sending domain {sd} does not pass DMARC verification and has a "
                        "DMARC policy of reject. [{srv}]", "", "eop", 50, None),
        ("{u}'s mailbox is full.", "Recipient's mailbox is full",
         "Try resending the message later, or contact the recipient by other means.",
         "554 5.2.2", "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException."
                      "MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception with "
                      "message [BeginDiagnosticData]Cannot open mailbox.", "", None, 22, "both"),
        ("Office 365 tried to deliver your message but it couldn't be delivered before it expired.",
         "Message expired", "Try sending the message again later.",
         "550 4.4.7", "550 4.4.7 QUEUE.Expired; message expired [Previous hop: {mx}, LastAttemptedServerName={mx}] "
                      "[LastAttemptedIP={ip}:25]", "The server has tried to deliver this message, without success, "
                      "and has stopped trying.", None, 24, None),
        ("Your message couldn't be delivered because it was caught in a mail loop.", "Mail loop",
         "Ask the recipient's email admin to check their forwarding and connector settings.",
         "554 5.4.14", "554 5.4.14 Hop count exceeded - possible mail loop ATTR34 [{srv}]", "", None, 21, None),
        ("Your message couldn't be delivered because it's too large.", "Message too large",
         "Reduce the size of the message or its attachments and send it again.",
         "552 5.3.4", "552 5.3.4 ROUTING.SizeLimit; message size exceeds fixed maximum size for route "
                      "(Message=38404912 bytes, Limit=36700160 bytes)", "", None, 23, None),
        ("The domain {d} doesn't exist.", "Unknown domain",
         "Check the spelling of the domain part of the address and resend the message.",
         "550 5.4.310", "550 5.4.310 DNS domain {d} does not exist [Message=InfoDomainNonexistent] "
                        "[LastAttemptedServerName={d}] [{srv}]", "", None, 21, None),
        ("{u} has received too many messages in the last hour.", "Recipient over its receiving limit",
         "Try sending the message again later.",
         "554 5.2.122", "554 5.2.122 The recipient has exceeded their limit for the number of messages they can "
                        "receive per hour. For more information go to https://go.microsoft.com/fwlink/?linkid=2146193",
         "", None, 70, None),
        ("Your message couldn't be delivered because one of its header fields is too long.", "Invalid message content",
         "Shorten the header or remove it, then send the message again.",
         "554 5.6.211", "554 5.6.211 Invalid MIME Content: Single text value size (32768) exceeded allowed maximum "
                        "(32768) for the 'List-Unsubscribe' header. [{srv}]", "", None, 23, None),
        ("{u}'s organization doesn't allow messages to be forwarded outside it.", "Forwarding blocked",
         "Contact the recipient by other means.",
         "550 5.7.520", "550 5.7.520 Access denied, Your organization does not allow external forwarding. Please "
                        "contact your administrator for further assistance. AS(7555)", "", None, 50, None),
    ]
    for summ, title, fix, code, err, expl, remote, cls, mode in V:
        c = Case(domains=["no-such-tenant.example", "typo-domain.test"] if code.endswith("5.4.310") else
                 ["example.org", "example.net", "corp.example", "campus.example", "example.com"], mode=mode)
        rows.append(row(c, o365(c, summ, title, fix, code, err, expl, eop(c) if remote == "eop" else None), cls))
    # --- 5.7.57 and 5.7.64 as seen by our relay submitting into Exchange Online
    c = Case()
    r = f"530 5.7.57 Client not authenticated to send mail. Error: 535 5.7.139 Authentication unsuccessful {eop_tag()}"
    rows.append(row(c, pf_relay(c, r, "5.7.57", "smtp.office365.com", "MAIL FROM"), 50))
    c = Case(domains=["example.com", "biz.example"])
    r = f"550 5.7.64 TenantAttribution; Relay Access Denied {eop_tag()}"
    rows.append(row(c, pf_relay(c, r, "5.7.64", eop(c), "RCPT TO"), 54))
    # --- Exchange Online delay for a throttling reply
    c = Case()
    srv = o365_server()
    rows.append(row(c, exchange(c, srv, "This message hasn't been delivered yet. Delivery will continue to be attempted.\n\n"
                                "The server will keep trying to deliver this message for the next 1 days, 19 hours and "
                                "57 minutes. You'll be notified if the message can't be delivered by that time.",
                                f"Remote Server returned '451 4.7.500 Server busy. Please try again later from "
                                f"[{OUR_IP}]. (S77714)'", "4.7.500",
                                f"451 4.7.500 Server busy. Please try again later from [{OUR_IP}]. (S77714)",
                                remote=olc(), delayed=True, frm=f"Microsoft Outlook <postmaster@{c.d}>"), 70))
    return rows


# ---------------------------------------------------------------- Yahoo / AOL
def yahoo_failure(c, detail):
    body = ("Sorry, we were unable to deliver your message to the following address.\n\n" + detail +
            "\n--- Below this line is a copy of the message.\n\n" + original(c))
    return plain_msg(c, "MAILER-DAEMON@yahoo.com", "Failure Notice", body, mime=False,
                     via=f"sonic{R.randint(301, 330)}-{R.randint(1, 45)}.consmr.mail.{R.choice(['ne1', 'bf2', 'gq1', 'ir2'])}.yahoo.com")


def f_yahoo_aol():
    rows = []
    YH = lambda: R.choice(["mta5.am0.yahoodns.net", "mta6.am0.yahoodns.net", "mta7.am0.yahoodns.net",
                           "mx-eu.mail.am0.yahoodns.net"])
    AOL = lambda: R.choice(["mx-aol.mail.gm0.yahoodns.net", "mailin-01.mx.aol.com", "mailin-03.mx.aol.com"])
    Y = ["example.net", "example.com", "ymail-user.example", "att-like.test"]
    # 1. Yahoo's own Failure Notice
    c = Case(domains=Y)
    n = R.randint(1000, 9999)
    rows.append(row(c, yahoo_failure(c, f"<{c.a}>:\nRemote host said: 554 delivery error: dd This user doesn't have a "
                                        f"yahoo.com account ({c.a}) [0] - mta{n}.mail.ne1.yahoo.com\n"), 10))
    # 2. Yahoo's Failure Notice, "does not like recipient" form with 552 1 mailbox not found
    c = Case(domains=Y)
    rows.append(row(c, yahoo_failure(c, f"<{c.a}>:\n{c.rip} does not like recipient.\nRemote host said: 552 1 Requested "
                                        f"mail action aborted, mailbox not found\nGiving up on {c.rip}.\n"), 10))
    # 3. disabled mailbox (554 30) via Postfix
    c = Case(domains=Y)
    rows.append(row(c, pf_relay(c, "554 30 Sorry, your message to {a} cannot be delivered. This mailbox is disabled "
                                   "(554.30).", "5.0.0", YH()), 10))
    # 4. over quota 452 as a delay
    c = Case(domains=Y)
    rows.append(row(c, pf_relay(c, "452 4.2.2 Mailbox over quota - this mailbox is over its storage limit", "4.2.2", YH(),
                                delay=True), 22))
    # 5. TSS04
    c = Case(domains=Y)
    rows.append(row(c, pf_relay(c, f"421 4.7.0 [TSS04] Messages from {OUR_IP} temporarily deferred due to unexpected "
                                   "volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
                                "4.7.0", YH(), "MAIL FROM", delay=True), 70))
    # 6. TS01 via Exim delay-style permanent after retries? keep as Postfix delay
    c = Case(domains=Y)
    rows.append(row(c, pf_relay(c, f"421 4.7.1 [TS01] Messages from {OUR_IP} temporarily deferred due to excessive user "
                                   "complaints - 4.16.56.1; see https://postmaster.yahooinc.com/error-codes",
                                "4.7.1", YH(), "end of DATA", delay=True), 70))
    # 7. TS03 permanent deferral (Exim)
    c = Case(domains=Y)
    y = YH()
    ml = [f"553 5.7.1 [TS03] All messages from {OUR_IP} will be permanently deferred; Retrying will NOT succeed. See "
          "https://postmaster.yahooinc.com/error-codes"]
    rows.append(row(c, exim(c, f"out{R.randint(1, 9)}.{R.choice(DOMAINS)}",
                            [exim_remote_block(c.a, y, doc_ip("203.0.113"), f"MAIL FROM:<{SENDER}> SIZE={R.randint(5000, 60000)}", ml)],
                            [exim_field(c.a, ml, y)]), 51))
    # 8. TSS09 via sendmail
    c = Case(domains=Y)
    y, h = YH(), f"smtp.{R.choice(DOMAINS)}"
    r = (f"553 5.7.2 [TSS09] All messages from {OUR_IP} will be permanently deferred; Retrying will NOT succeed. "
         "See https://postmaster.yahooinc.com/error-codes")
    tr = f"... while talking to {y}.:\n>>> MAIL From:<{SENDER}>\n<<< {r}\n554 5.0.0 Service unavailable\n"
    rows.append(row(c, sendmail(c, h, sm_text(f"<{c.a}>\n    (reason: 553 5.7.2 [TSS09] All messages from {OUR_IP} will be permanently deferred)\n", tr),
                                [sm_field(c.a, "failed", "5.7.2", r, y)], "Returned mail: Service unavailable"), 51))
    # 9. PH01 content
    c = Case(domains=Y)
    rows.append(row(c, pf_relay(c, "554 Message not allowed - [PH01] Email not accepted for policy reasons.  Please visit "
                                   "https://postmaster.yahooinc.com/error-codes", "5.0.0", YH(), "end of DATA"), 52))
    # 10. unauthenticated sender (SPF/DKIM)
    c = Case(domains=Y)
    rows.append(row(c, pf_relay(c, "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo "
                                   "requires all senders to authenticate with either SPF or DKIM.", "5.7.9", YH(),
                                "end of DATA"), 50))
    # 11. 553 5.7.2 DMARC
    c = Case(domains=Y)
    y = YH()
    ml = [f"553 5.7.2 Message not accepted: {SENDER_DOMAIN} fails the DMARC policy published by the author domain.",
          "See https://postmaster.yahooinc.com/error-codes"]
    ml = [ml[0] + " " + ml[1]]
    rows.append(row(c, exim(c, f"mx-out.{R.choice(DOMAINS)}", [exim_remote_block(c.a, y, doc_ip("203.0.113"), "end of data", ml)],
                            [exim_field(c.a, ml, y, "5.7.2")]), 50))
    # 12. GL01 greylist-style deferral
    c = Case(domains=Y)
    rows.append(row(c, pf_relay(c, f"421 4.7.0 [GL01] Message from ({OUR_IP}) temporarily deferred - 4.16.50. Please "
                                   "refer to https://postmaster.yahooinc.com/error-codes", "4.7.0", YH(), "MAIL FROM",
                                delay=True), 70))
    # 13. header not compliant
    c = Case(domains=Y)
    rows.append(row(c, pf_relay(c, "554 Message not allowed - Headers are not RFC compliant[291]", "5.0.0", YH(),
                                "end of DATA"), 40))
    # --- AOL
    A = ["aol-user.example", "example.org", "example.com"]
    c = Case(domains=A)
    rows.append(row(c, pf_relay(c, f"554 5.7.1 :  (RTR:BL)  https://postmaster.aol.com/error-codes#554rtrbl", "5.7.1",
                                AOL(), "MAIL FROM"), 51))
    c = Case(domains=A)
    rows.append(row(c, pf_relay(c, "421 4.7.1 :  (DYN:T1)  https://postmaster.aol.com/error-codes#421dynt1", "4.7.1",
                                AOL(), "MAIL FROM", delay=True), 50))
    c = Case(domains=A)
    a_h = AOL()
    ml = ["554 5.7.1 - (HVU:B1)  https://postmaster.aol.com/error-codes#554hvub1"]
    rows.append(row(c, exim(c, f"relay{R.randint(1, 9)}.{R.choice(DOMAINS)}",
                            [f"  {c.a}\n    host {a_h} [{doc_ip('203.0.113')}]\n    SMTP error from remote mail server after initial connection:\n    {ml[0]}\n"],
                            [exim_field(c.a, ml, a_h)]), 51))
    return rows


# ---------------------------------------------------------------- Postfix
def f_postfix():
    rows = []

    def remote(reply, st, cmd="RCPT TO", n=1, delay=False):
        c = Case(n=n, domains=[R.choice(DOMAINS)] if n > 1 else None)
        return c, pf_relay(c, reply, st, c.mx, cmd, delay=delay)

    def own(c, text, st, diag, dtype="X-Postfix", mode="fail", host=None, action=None, remote_mta=None):
        f = field(c.a, action or ("delayed" if mode == "delay" else "failed"), st, diag, remote_mta, dtype=dtype)
        return postfix(c, f"<{c.a}>: {text}", [f], host, mode)

    def local_case():
        host = f"{R.choice(['mail', 'mx', 'imap', 'mbox'])}.{R.choice(DOMAINS)}"
        return Case(rcpts=[f"{R.choice(LOCALS)}@{host.split('.', 1)[1]}"]), host

    for reply, st, cmd, cls, n in [
        ("550 5.1.1 <{a}>: Recipient address rejected: User unknown in virtual mailbox table", "5.1.1", "RCPT TO", 10, 1),
        ("550 5.1.1 <{a}>: Recipient address rejected: User unknown in local recipient table", "5.1.1", "RCPT TO", 10, 1),
        ("550 5.1.1 <{a}>: Recipient address rejected: User unknown in virtual alias table", "5.1.1", "RCPT TO", 10, 2),
        ("454 4.7.1 <{a}>: Relay access denied", "4.7.1", "RCPT TO", 54, 1),
        ("554 5.7.1 <{a}>: Relay access denied", "5.7.1", "RCPT TO", 54, 1),
        ("551 5.1.6 <{a}>: Recipient address rejected: User has moved; please try <forward{n}@example.net>", "5.1.6",
         "RCPT TO", 10, 1),
        ("553 5.1.8 <{s}>: Sender address rejected: Domain not found", "5.1.8", "MAIL FROM", 50, 1),
        ("550 5.7.1 Client host rejected: cannot find your reverse hostname, [{sip}]", "5.7.1", "RCPT TO", 50, 1),
        ("554 5.7.1 Service unavailable; Client host [{sip}] blocked using zen.spamhaus.org; "
         "https://www.spamhaus.org/query/ip/{sip}", "5.7.1", "RCPT TO", 51, 1),
        ("552 5.3.4 Message header size exceeds limit", "5.3.4", "end of DATA", 23, 1),
    ]:
        c, eml = remote(reply.replace("{n}", str(R.randint(2, 99))), st, cmd, n, delay=st[0] == "4")
        rows.append(row(c, eml, cls))
    # our relay's own findings
    c = Case(domains=["no-such-host.example", "typo.test", "parked.example"])
    rows.append(row(c, own(c, f"Host or domain name not found. Name service error for name={c.d} type=MX: Host not found",
                           "5.4.4", f"Host or domain name not found. Name service error for name={c.d} type=MX: Host not found"), 21))
    c = Case()
    t = f"connect to {c.mx}[{c.rip}]:25: Connection timed out"
    rows.append(row(c, own(c, t, "4.4.1", t), 24))
    c = Case()
    t = f"lost connection with {c.mx}[{c.rip}] while sending RCPT TO"
    rows.append(row(c, own(c, t, "4.4.2", t), 24))
    c = Case()
    t = f"conversation with {c.mx}[{c.rip}] timed out while receiving the initial server greeting"
    rows.append(row(c, own(c, t, "4.4.2", t), 24))
    c = Case()
    t = f"conversation with {c.mx}[{c.rip}] timed out while sending message body"
    rows.append(row(c, own(c, t, "4.4.2", t), 24))
    c = Case()
    t = f"mail for {c.d} loops back to myself"
    rows.append(row(c, own(c, t, "5.4.6", t), 21))
    c = Case(domains=["flaky-dns.example", "example.net"])
    t = (f"delivery temporarily suspended: Host or domain name not found. Name service error for name={c.d} type=MX: "
         "Host not found, try again")
    rows.append(row(c, own(c, t, "4.4.3", t, mode="delay"), 21))
    c = Case(domains=["parked.example", "nullmx.test"])
    t = f"Domain {c.d} does not accept mail (nullMX)"
    rows.append(row(c, own(c, t, "5.1.10", t), 21))
    c = Case()
    t = f"message size {R.randint(12, 30) * 1048576} exceeds size limit 10240000 of server {c.mx}[{c.rip}]"
    rows.append(row(c, own(c, t, "5.3.4", t), 23))
    # local and LMTP deliveries on the recipient's own server
    c, h = local_case()
    t = f"host {h}[private/dovecot-lmtp] said: 550 5.1.1 <{c.a}> User doesn't exist: {c.a} (in reply to RCPT TO command)"
    rows.append(row(c, postfix(c, wrap(f"<{c.a}>: {t}", 74), [field(c.a, "failed", "5.1.1", f"550 5.1.1 <{c.a}> User doesn't exist: {c.a}",
                                                                      f"{h}")], h), 10))
    c, h = local_case()
    t = f"host {h}[private/dovecot-lmtp] said: 552 5.2.2 <{c.a}> Quota exceeded (mailbox for user is full) (in reply to end of DATA command)"
    rows.append(row(c, postfix(c, wrap(f"<{c.a}>: {t}", 74), [field(c.a, "failed", "5.2.2", f"552 5.2.2 <{c.a}> Quota exceeded (mailbox for user is full)",
                                                                      f"{h}")], h), 22))
    c, h = local_case()
    t = (f"Command died with status 73: \"/usr/bin/procmail -a \"$EXTENSION\"\". Command output: procmail: Quota exceeded "
         f"while writing \"/var/spool/mail/{c.local}\"")
    rows.append(row(c, postfix(c, wrap(f"<{c.a}>: {t}", 74), [field(c.a, "failed", "5.3.0", t, dtype="x-unix")], h), 22))
    c, h = local_case()
    t = f"cannot update mailbox /var/mail/{c.local} for user {c.local}. error writing message: File too large"
    rows.append(row(c, postfix(c, wrap(f"<{c.a}>: {t}", 74), [field(c.a, "failed", "5.2.2", t, dtype="x-unix")], h), 22))
    c, h = local_case()
    t = f"unknown user: \"{c.local}\""
    rows.append(row(c, postfix(c, f"<{c.a}>: {t}", [field(c.a, "failed", "5.1.1", t, dtype="X-Postfix")], h), 10))
    c, h = local_case()
    t = f"mail forwarding loop for {c.a}"
    rows.append(row(c, postfix(c, f"<{c.a}>: {t}", [field(c.a, "failed", "5.4.6", t, dtype="X-Postfix")], h), 21))
    return rows


# ---------------------------------------------------------------- Exim
def f_exim():
    rows = []
    host = lambda: f"{R.choice(['server', 'host', 'vps', 'cpanel', 'mx-out'])}{R.randint(1, 99)}.{R.choice(DOMAINS)}"

    def rem(cmd, lines, st="5.0.0", cls=None, dsn=True, n=1, domains=None):
        c = Case(n=n, domains=domains or ([R.choice(DOMAINS)] if n > 1 else None))
        ls = [c.f(l) for l in lines]
        blocks = [exim_remote_block(r, c.mx, c.rip, c.f(cmd).replace(c.a, r), [l.replace(c.a, r) for l in ls]) for r in c.rcpts]
        flds = [exim_field(r, [l.replace(c.a, r) for l in ls], c.mx, st) for r in c.rcpts]
        return row(c, exim(c, host(), blocks, flds, dsn=dsn), cls)

    rows.append(rem("RCPT TO:<{a}>", ["550 5.1.1 <{a}>: Recipient address rejected: User unknown"], cls=10))
    rows.append(rem("end of data", ["552 5.3.4 Message size exceeds fixed maximum message size"], cls=23))
    rows.append(rem("RCPT TO:<{a}>", ["550 relay not permitted"], cls=54))
    rows.append(rem("RCPT TO:<{a}>", ["550-Verification failed for <{s}>", "550-Unrouteable address",
                                       "550 Sender verify failed"], cls=50))
    rows.append(rem("end of data", ["550-rejected after DATA: This message contains a virus",
                                     "550-(Win.Trojan.Agent-1234567) and has been rejected. Please scan your",
                                     "550 system."], cls=53))
    rows.append(rem("RCPT TO:<{a}>", [f"550-Please turn on SMTP Authentication in your mail client. {OUR_MTA}",
                                       f"550-[{OUR_IP}]:{R.randint(30000, 65000)} is not permitted to relay through this server",
                                       "550 without authentication."], cls=54))
    rows.append(rem("RCPT TO:<{a}>", ["550 No Such User Here"], cls=10, n=2))
    rows.append(rem("MAIL FROM:<{s}> SIZE=18342", [f"550 5.7.23 SPF check failed: {OUR_IP} is not allowed to send mail from {SENDER_DOMAIN}"], cls=50))
    rows.append(rem("end of data", ["552 5.2.2 Mailbox quota exceeded"], cls=22, dsn=False))
    # old Exim (4.6x) wording: host on the same line as the reply, plain text
    c = Case()
    blk = f"  {c.a}\n    SMTP error from remote mailer after RCPT TO:<{c.a}>:\n    host {c.mx} [{c.rip}]: 550 5.1.1 <{c.a}>... User unknown\n"
    rows.append(row(c, exim(c, host(), [blk], dsn=False), 10))
    c = Case()
    ml = [f"554 5.7.1 Service unavailable; Client host [{OUR_IP}] blocked using bl.spamcop.net; Blocked - see "
          f"https://www.spamcop.net/bl.shtml?{OUR_IP}"]
    blk = f"  {c.a}\n    host {c.mx} [{c.rip}]\n    SMTP error from remote mail server after initial connection:\n    {ml[0]}\n"
    rows.append(row(c, exim(c, host(), [blk], [exim_field(c.a, ml, c.mx)]), 51))
    # Exim's own reasons (no remote reply)
    for text, cls, domains in [
        ("retry time not reached for any host after a long failure period", 24, None),
        ("all hosts for '{d}' have been failing for a long time (and retry time not reached)", 24, None),
        ("Unrouteable address", 21, ["no-such-domain.example", "old-brand.test"]),
        ("all relevant MX records point to non-existent hosts", 21, ["broken-mx.example", "lame.test"]),
        ("Too many \"Received\" headers - suspected mail loop", 21, None),
    ]:
        c = Case(domains=domains)
        blk = f"  {c.a}\n    {c.f(text)}\n"
        rows.append(row(c, exim(c, host(), [blk], [field(c.a, "failed", "5.0.0", orig=False)]), cls))
    # local deliveries on the recipient's server
    h = host()
    c = Case(rcpts=[f"{R.choice(LOCALS)}@{h.split('.', 1)[1]}"])
    blk = (f"  {c.a}\n    mailbox is full (MTA-imposed quota exceeded while writing to\n"
           f"    /home/{c.local}/mail/{c.d}/{c.local}/new/{R.randint(1700000000, 1760000000)}.H{R.randint(100000, 999999)}P{R.randint(1000, 99999)}.{h.split('.')[0]})\n")
    rows.append(row(c, exim(c, h, [blk], [field(c.a, "failed", "5.0.0", orig=False)]), 22))
    h = host()
    c = Case(rcpts=[f"{R.choice(['support', 'tickets', 'helpdesk'])}@{h.split('.', 1)[1]}"])
    blk = (f"  pipe to |/usr/local/bin/ticket-import\n    generated by {c.a}\n    local delivery failed\n\n"
           f"The following text was generated during the delivery attempt:\n\n------ pipe to |/usr/local/bin/ticket-import\n"
           f"       generated by {c.a} ------\n\nChild process of address_pipe transport returned 69 (could mean service "
           "or program unavailable) from command:\n/usr/local/bin/ticket-import\n")
    rows.append(row(c, exim(c, h, [blk], dsn=False), 40))
    return rows


# ---------------------------------------------------------------- sendmail 8.1x
def f_sendmail():
    rows = []
    host = lambda: f"{R.choice(['mailhub', 'smtp', 'relay', 'gw'])}{R.randint(1, 9)}.{R.choice(DOMAINS)}"

    def talk(c, cmds, reply, tail, status, reason=None, subject="Returned mail: see transcript for details", cls=None):
        tr = f"... while talking to {c.mx}.:\n" + "".join(x + "\n" if x.startswith("<<<") else f">>> {x}\n" for x in cmds) + "".join(
            f"<<< {l}\n" for l in reply.split("\n")) + tail + "\n"
        fatal = f"<{c.a}>\n    (reason: {reason or reply.split(chr(10))[-1]})\n"
        return row(c, sendmail(c, host(), sm_text(fatal, tr), [sm_field(c.a, "failed", status, reply.replace("\n", " "), c.mx)],
                               subject), cls)

    c = Case()
    rows.append(talk(c, ["DATA"], f"550 5.1.1 <{c.a}>... User unknown", f"550 5.1.1 <{c.a}>... User unknown\n<<< 503 5.0.0 Need RCPT (recipient)",
                     "5.1.1", cls=10))
    c = Case()
    rows.append(talk(c, [f"MAIL From:<{SENDER}> SIZE={R.randint(3000, 90000)}"],
                     f"554 5.7.1 Service unavailable; Client host [{OUR_IP}] blocked using b.barracudacentral.org",
                     "554 5.0.0 Service unavailable", "5.7.1", subject="Returned mail: Service unavailable", cls=51))
    c = Case()
    rows.append(talk(c, ["DATA"], "552 5.2.2 Mailbox full, over quota", f"552 5.2.2 <{c.a}>... Mailbox full, over quota", "5.2.2", cls=22))
    c = Case()
    rows.append(talk(c, [f"RCPT To:<{c.a}>"], f"550 5.7.1 <{c.a}>... Relaying denied. Proper authentication required.",
                     f"550 5.7.1 <{c.a}>... Relaying denied. Proper authentication required.", "5.7.1", cls=54))
    c = Case()
    rows.append(talk(c, [f"MAIL From:<{SENDER}> SIZE={R.randint(3000, 90000)}"],
                     f"553 5.1.8 <{SENDER}>... Domain of sender address {SENDER} does not exist",
                     "554 5.0.0 Service unavailable", "5.1.8", subject="Returned mail: Service unavailable", cls=50))
    c = Case()
    rows.append(talk(c, ["DATA", "<<< 354 Enter mail, end with \".\" on a line by itself", "."],
                     "554 5.7.1 Rejected by content filter: message classified as spam (score 14.2)",
                     f"554 5.7.1 <{c.a}>... Rejected by content filter: message classified as spam (score 14.2)", "5.7.1", cls=52))
    c = Case()
    rows.append(talk(c, ["DATA", "<<< 354 Enter mail, end with \".\" on a line by itself", "."],
                     "554 5.4.6 Hop count exceeded - possible mail loop", f"554 5.4.6 <{c.a}>... Hop count exceeded - possible mail loop",
                     "5.4.6", cls=21))
    c = Case()
    rows.append(talk(c, ["DATA", "<<< 354 Enter mail, end with \".\" on a line by itself", "."],
                     "554 5.6.0 Data format error", f"554 5.6.0 <{c.a}>... Data format error", "5.6.0",
                     subject="Returned mail: Data format error", cls=40))
    # local user unknown on the recipient's own sendmail
    h = host()
    c = Case(rcpts=[f"{R.choice(LOCALS)}@{h.split('.', 1)[1]}"])
    text = sm_text(f"<{c.a}>\n    (reason: 550 5.1.1 <{c.a}>... User unknown)\n",
                   f"550 5.1.1 <{c.a}>... User unknown\n", received=f"{OUR_MTA} [{OUR_IP}]")
    rows.append(row(c, sendmail(c, h, text, [sm_field(c.a, "failed", "5.1.1", f"550 5.1.1 <{c.a}>... User unknown")],
                                "Returned mail: User unknown"), 10))
    # Host unknown
    c = Case(domains=["no-such-domain.example", "misspelt.test"])
    text = sm_text(f"{c.a}\n    (reason: 550 Host unknown)\n",
                   f"550 5.1.2 {c.a}... Host unknown (Name server: {c.d}: host not found)\n")
    rows.append(row(c, sendmail(c, host(), text, [sm_field(c.a, "failed", "5.1.2", None, c.d)],
                                f"Returned mail: Host unknown (Name server: {c.d}: host not found)"), 21))
    # size decided locally from the remote's SIZE advertisement
    c = Case()
    mx = R.choice([10, 20, 25])
    text = sm_text(f"<{c.a}>\n    (reason: 552 5.2.3 Message is too large; {mx * 1048576} bytes max)\n",
                   f"... while talking to {c.mx}.:\n>>> MAIL From:<{SENDER}> SIZE={mx * 1048576 + R.randint(10000, 900000)}\n"
                   f"<<< 552 5.2.3 Message size exceeds fixed maximum message size\n"
                   f"552 5.2.3 <{c.a}>... Message is too large; {mx * 1048576} bytes max\n")
    rows.append(row(c, sendmail(c, host(), text, [sm_field(c.a, "failed", "5.2.3", f"552 5.2.3 Message is too large; {mx * 1048576} bytes max", c.mx)],
                                "Returned mail: see transcript for details"), 23))
    # warning: connection refused
    c = Case()
    text = sm_text(None, f"<{c.a}>... Deferred: Connection refused by {c.mx}.\nWarning: message still undelivered after 4 hours\n"
                         "Will keep trying until message is 5 days old\n", warning=True)
    rows.append(row(c, sendmail(c, host(), text, [sm_field(c.a, "delayed", "4.4.1", None, c.mx, [f"Will-Retry-Until: {rfcdate()}"])],
                                "Warning: could not send message for past 4 hours", how="headers"), 21))
    # 5 days: timed out, and host name lookup failure
    c = Case()
    text = sm_text(f"<{c.a}>\n    (reason: Deferred: Connection timed out with {c.mx}.)\n",
                   f"<{c.a}>... Deferred: Connection timed out with {c.mx}.\nMessage could not be delivered for 5 days\n"
                   "Message will be deleted from queue\n")
    rows.append(row(c, sendmail(c, host(), text, [sm_field(c.a, "failed", "4.4.7", None, c.mx)],
                                "Returned mail: Cannot send message for 5 days"), 24))
    c = Case(domains=["flaky-dns.example", "lame.test"])
    text = sm_text(f"<{c.a}>\n    (reason: Deferred: Name server: {c.d}.: host name lookup failure)\n",
                   f"<{c.a}>... Deferred: Name server: {c.d}.: host name lookup failure\nMessage could not be delivered for 5 days\n"
                   "Message will be deleted from queue\n")
    rows.append(row(c, sendmail(c, host(), text, [sm_field(c.a, "failed", "4.4.7", None)],
                                "Returned mail: Cannot send message for 5 days"), 24))
    return rows


# ---------------------------------------------------------------- Exchange Server 2007-2019 (on-premises)
def f_exchange():
    rows = []
    srvname = lambda org: f"{R.choice(['EX', 'EXCH', 'MBX', 'EXHUB', 'CAS'])}{R.randint(1, 20):02}.{org}"
    ORGS = ["corp.example", "firm.example", "office.example.com", "hq.example"]
    HELP = " If the problem continues, please contact your helpdesk."
    V = [  # (human, diag line, status, ds diag, remote?, org line?, version, class)
        ("The email address you entered couldn't be found. Please check the recipient's email address and try to "
         "resend the message." + HELP, "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##", "5.1.1",
         "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##", False, False, "2010", 10),
        ("The e-mail address you entered couldn't be found. Please check the recipient's e-mail address and try to "
         "resend the message." + HELP, "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##", "5.1.1",
         None, False, False, "2007", 10),
        ("A problem occurred while delivering your message to this email address. Try sending your message again." + HELP,
         "Remote Server returned '550 5.1.1 <{a}>: Recipient address rejected: User unknown in relay recipient table'",
         "5.1.1", "550 5.1.1 <{a}>: Recipient address rejected: User unknown in relay recipient table", True, False, "2016", 10),
        ("You can't send a message on behalf of this user unless you have permission to do so. Please make sure "
         "you're sending on behalf of the correct sender, or request the necessary permission." + HELP,
         "#550 5.7.1 Client does not have permissions to send as this sender ##", "5.7.1",
         "550 5.7.1 Client does not have permissions to send as this sender", False, False, "2010", 50),
        ("The message is too large for the recipient. Please reduce the size of the message (for example, by removing "
         "attachments) and try to resend it." + HELP,
         "#550 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient ##", "5.2.3",
         "#550 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient ##", False, False, "2013", 23),
        ("The server has tried to deliver this message, without success, and has stopped trying. Please try sending "
         "this message again." + HELP, "#550 4.4.7 QUEUE.Expired; message expired ##", "4.4.7", None, True, False, "2013", 24),
        ("The domain name in the email address is incorrect, or the recipient's domain can't be found. Please check "
         "the address and try to resend the message." + HELP,
         "#550 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain ##", "5.4.4",
         "#550 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain ##", False, False, "2010", 21),
        ("The recipient's mailbox is full and can't accept messages now. Please try resending your message later, or "
         "contact the recipient directly.", "#550 5.2.2 STOREDRV.Deliver: mailbox full ##", "5.2.2",
         "#550 5.2.2 STOREDRV.Deliver: mailbox full ##", False, False, "2016", 22),
        ("Your message wasn't delivered because the recipient's email system only accepts messages from authenticated "
         "senders." + HELP, "#550 5.7.1 RESOLVER.RST.AuthRequired; authentication required ##", "5.7.1",
         None, False, False, "2010", 50),
        ("A configuration error in the email system caused the message to bounce between two servers or to be "
         "forwarded repeatedly. Please contact your helpdesk.", "#554 5.4.6 Hop count exceeded - possible mail loop ##",
         "5.4.6", None, False, False, "2007", 21),
        ("A problem occurred while delivering your message to this email address. Try sending your message again." + HELP,
         "{mx} #554 5.7.1 Service unavailable; Client host [{sip}] blocked using bl.spamcop.net ##", "5.7.1",
         "554 5.7.1 Service unavailable; Client host [{sip}] blocked using bl.spamcop.net", True, True, "2013", 51),
        ("Your message wasn't delivered because the recipient's email provider rejected it.",
         "{mx} #550 5.7.1 Delivery not authorized, message refused ##", "5.7.1",
         "550 5.7.1 Delivery not authorized, message refused", True, True, "2019", 50),
        ("The message couldn't be delivered because its content couldn't be converted for the recipient's mailbox." + HELP,
         "#554 5.6.0 STOREDRV.Deliver.Exception:ConversionFailedException; Failed to process message due to a "
         "permanent exception with message Content conversion: Corrupt content. ##", "5.6.0", None, False, False, "2016", 40),
        ("The e-mail system was unable to deliver the message." + HELP,
         "Remote Server returned '< #5.0.0 smtp; 550 Requested action not taken: mailbox unavailable>'", "5.0.0",
         None, True, False, "2007", 10),
    ]
    for human, diag, st, ds, remote, orgl, ver, cls in V:
        c = Case()
        srv = srvname(R.choice(ORGS))
        ds = ds.lstrip("#").rstrip("# ") if ds else None
        rows.append(row(c, exchange(c, srv, c.f(human), c.f(diag), st, c.f(ds) if ds else None,
                                    c.mx if remote else None,
                                    f"The following organization rejected your message: {c.mx}." if orgl else None,
                                    hdrs=R.random() < 0.6, html=ver != "2007", version=ver), cls))
    return rows


# ---------------------------------------------------------------- security appliances and filtering services
def notice(c, frm, subject, text, how="rfc822", via=None, extra=()):
    """A gateway's own non-DSN notice: text part plus (usually) the original."""
    parts = [text_part(text, cte=some_cte(((None, 3), ("qp", 1))))] + returned(c, how)
    if len(parts) == 1:
        return plain_msg(c, frm, subject, text, extra=list(extra), via=via)
    return multi_msg(c, frm, subject, parts, "mixed", extra=list(extra), preamble="This is a multi-part message in MIME format.", via=via)


def f_appliances():
    rows = []
    mc_ref = lambda: f"[{hx(14, ALNUM)}-{lc(6)}.{R.choice(['uk12', 'us232', 'eu41', 'uk245'])}]"
    pp = lambda: f"mx0{R.choice('ab')}-00{R.randint(100000, 999999)}.pphosted.com"
    V = [  # (reply, status, remote host, command, class)
        (f"554 Service unavailable; Client host [{OUR_IP}] blocked using Barracuda Reputation; "
         f"http://www.barracudanetworks.com/reputation/?pr=1&ip={OUR_IP}", "5.7.1",
         f"d{R.randint(100000, 999999)}a.ess.barracudanetworks.com", "RCPT TO", 51),
        ("550 permanent failure for one or more recipients ({a}:550 5.1.1 <{a}>... User unknown)", "5.0.0",
         f"d{R.randint(100000, 999999)}b.ess.barracudanetworks.com", "end of DATA", 10),
        ("550 5.1.1 <{a}>: Recipient address rejected: User unknown", "5.1.1", pp(), "RCPT TO", 10),
        (f"554 5.7.0 Blocked - see https://ipcheck.proofpoint.com/?ip={OUR_IP}", "5.7.0", pp(), "RCPT TO", 51),
        (f"550 Rejected by header based Anti-Spoofing policy: {SENDER} - https://community.mimecast.com/docs/DOC-1369#550 "
         + mc_ref(), "5.0.0", "eu-smtp-inbound-1.mimecast.com", "end of DATA", 50),
        ("550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550 " + mc_ref(), "5.0.0",
         "us-smtp-inbound-2.mimecast.com", "RCPT TO", 10),
        ("550 Administrative prohibition - envelope blocked - https://community.mimecast.com/docs/DOC-1369#550 "
         + mc_ref(), "5.0.0", "eu-smtp-inbound-2.mimecast.com", "RCPT TO", 50),
        ("550 #5.1.0 Address rejected.", "5.1.0", None, "RCPT TO", 10),
        ("554 Your access to this mail system has been rejected due to the sending MTA's poor reputation. If you "
         "believe that this failure is in error, please contact the intended recipient via alternate means.", "5.0.0",
         None, "MAIL FROM", 51),
        ("550 5.7.1 Message rejected: Sophos Email has identified this message as spam", "5.7.1",
         "mx-01-eu-west-1.prod.hydra.sophos.com", "end of DATA", 52),
        (f"550 5.7.1 Service unavailable; client [{OUR_IP}] blocked using Trend Micro Email Reputation database. "
         f"Please see http://www.mail-abuse.com/cgi-bin/lookup?ip_address={OUR_IP}", "5.7.1", "in.hes.trendmicro.com",
         "MAIL FROM", 51),
        ("554 5.7.1 This message has been blocked because it contains FortiGuard - AntiSpam blocking URL(s).",
         "5.7.1", None, "end of DATA", 52),
        ("550 Invalid recipient <{a}> (#5.1.1)", "5.1.1", f"server-{R.randint(2, 40)}.tower-{R.randint(100, 700)}.messagelabs.com",
         "RCPT TO", 10),
    ]
    for reply, st, rh, cmd, cls in V:
        c = Case()
        if rh is None:
            rh = c.mx
        rows.append(row(c, pf_relay(c, reply, st, rh, cmd), cls))
    # Barracuda's own notice
    c = Case()
    text = (f"Your message to: {c.a}\nwas blocked by our Spam Firewall. The email you sent with the following subject "
            f"has NOT BEEN DELIVERED:\n\nSubject: {c.osubj}\n\nReason: Message content rejected\n")
    rows.append(row(c, notice(c, f"mailer-daemon@barracuda.{c.d}", "Message you sent blocked by our bulk email filter",
                              text, how_returned((("rfc822", 2), ("none", 1))), f"barracuda.{c.d}"), 52))
    # Sophos virus notice
    c = Case()
    text = (f"The message you sent to {c.a} contained a virus and was not delivered.\n\n"
            f"  Subject:    {c.osubj}\n  Virus:      Troj/DocDl-{hx(4, string.ascii_uppercase)}\n"
            f"  Attachment: invoice_{R.randint(1000, 9999)}.zip\n\nThe message has been deleted. Please check your "
            "computer for viruses before sending it again.\n\n-- \nSophos Email Appliance\n")
    rows.append(row(c, notice(c, f"Sophos Email Appliance <postmaster@{c.d}>", "Virus found in a message you sent",
                              text, "headers", f"sea1.{c.d}"), 53))
    # MessageLabs / Symantec.cloud DSN-like notice for an SPF failure
    c = Case()
    ml = ("553-SPF (Sender Policy Framework) domain authentication\n553-fail. Refer to the Troubleshooting page at\n"
          "553-http://www.symanteccloud.com/troubleshooting for more\n553 information. (#5.7.1)")
    text = ("This is an automatically generated Delivery Status Notification.\n\nDelivery to the following recipients "
            f"failed.\n\n       {c.a}\n\nReason: {ml}\n")
    hostml = f"server-{R.randint(2, 40)}.tower-{R.randint(100, 700)}.messagelabs.com"
    parts = [text_part(text), status_part(hostml, [field(c.a, "failed", "5.7.1", ml.replace("\n", " "), c.mx, orig=False)])]
    parts += returned(c, "headers")
    rows.append(row(c, multi_msg(c, "MAILER-DAEMON@messagelabs.com", "Delivery Status Notification (Failure)", parts,
                                 via=hostml), 50))
    # ZixGateway: TLS required
    c = Case()
    text = (f"Your message to {c.a} could not be delivered.\n\nThe recipient's organization requires that messages be "
            "delivered over an encrypted (TLS) connection, and a TLS connection to their mail server could not be "
            f"established.\n\n  Recipient: {c.a}\n  Subject:   {c.osubj}\n  Server:    {c.mx}\n\n"
            "Please contact the recipient by other means.\n\n-- ZixGateway\n")
    rows.append(row(c, notice(c, f"ZixGateway <postmaster@zixgw.{c.d}>", f"Undeliverable: {c.osubj}", text, "none",
                              f"zixgw.{c.d}"), 50))
    return rows


# ---------------------------------------------------------------- ISPs around the world
def provider_ndr(c, frm, subject, body, cs, cte, st, diag, reporting, how=None, remote=None, html=False,
                 subj_cs=None, q=False, via=None):
    """A provider's own bounce in its local language: text (+HTML) in the local charset, DSN, original."""
    subj = subject if subject.isascii() else hdr_words(subject, subj_cs or cs, q)
    tp = text_part(body, cs, cte, quote=R.random() < 0.5)
    if html:
        h = ("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=" + cs + "\"></head><body>"
             + "".join(f"<p>{html_escape(p).replace(chr(10), '<br>')}</p>" for p in body.split("\n\n")) + "</body></html>\n")
        tp = nested([tp, html_part(h, cs, cte)], "alternative")
    parts = [tp, status_part(reporting, [field(r, "failed", st, diag.replace(c.a, r) if diag else None, remote, orig=False)
                                         for r in c.rcpts])]
    parts += returned(c, how or how_returned((("rfc822", 3), ("headers", 2), ("none", 1))))
    return multi_msg(c, frm, subj, parts, preamble=None, via=via or reporting, extra=["Auto-Submitted: auto-replied"])


def f_isp():
    rows = []
    # --- North America, Australia, UK: replies reported by our relays
    for doms, reply, st, remote, cmd, delay, cls in [
        (["comcast-user.example", "example.net"], "550 5.1.1 <{a}> Not our Customer", "5.1.1", "mx1a1.comcast.net",
         "RCPT TO", False, 10),
        (["comcast-user.example", "example.net"], f"554 resimta-po-{R.randint(10, 40)}v.sys.comcast.net resimta-po-"
         f"{R.randint(10, 40)}v.sys.comcast.net {OUR_IP} found on one or more DNSBLs, see "
         "http://postmaster.comcast.net/smtp-error-codes.php#BL000001", "5.0.0", "mx2h1.comcast.net", "CONNECT", False, 51),
        (["att-user.example", "sbcglobal-user.test"], f"550 5.7.1 Connections not accepted from servers without a valid "
         f"sender domain.flph{R.randint(800, 899)} Fix reverse DNS for {OUR_IP}", "5.7.1", "ff-ip4-mx-vip1.prodigy.net",
         "MAIL FROM", False, 50),
        (["att-user.example", "sbcglobal-user.test"], f"553 5.3.0 flpd{R.randint(500, 699)} DNSBL:RBL 521< {OUR_IP} "
         ">_is_blocked.For assistance forward this error to abuse_rbl@abuse-att.net", "5.3.0", "al-ip4-mx-vip2.prodigy.net",
         "CONNECT", False, 51),
        (["verizon-user.example", "example.com"], "550 5.1.1 unknown or illegal alias: {a}", "5.1.1", "relay.verizon.net",
         "RCPT TO", False, 10),
        (["bigpond-user.example", "example.com.au.example"], "554 5.7.1 Message rejected: this message appears to be spam",
         "5.7.1", "extmail.bigpond.com", "end of DATA", False, 52),
        (["btinternet-user.example", "example.co.uk.example"], "552 5.2.2 <{a}>: Mailbox over quota", "5.2.2",
         "mx.bt.lon5.cpcloud.co.uk", "RCPT TO", False, 22),
        # --- France, Germany
        (["orange-user.example", "wanadoo-user.test"], "550 5.1.1 Adresse d au moins un destinataire invalide. Invalid "
         "recipient. OFR_416 [416]", "5.1.1", "smtp-in.orange.fr", "RCPT TO", False, 10),
        (["free-user.example", "example.fr.example"], "552 5.2.2 <{a}>: Recipient address rejected: Quota exceeded "
         "(mailbox for user is full)", "5.2.2", "mx1.free.fr", "RCPT TO", False, 22),
        (["webde-user.example", "example.de.example"], "550-Requested action not taken: mailbox unavailable 550 invalid "
         "DNS MX or A/AAAA resource record", "5.0.0", "mx-ha03.web.de", "MAIL FROM", False, 50),
        (["tonline-user.example", "example.de.example"], f"554 IP={OUR_IP} - Dial-up or dynamic-ip connections are not "
         "accepted. Use your provider's mailrelay or contact tosa@rx.t-online.de (DIAL)", "5.0.0", "mx00.t-online.de",
         "CONNECT", False, 50),
        (["tonline-user.example", "example.de.example"], f"554 IP={OUR_IP} - A problem occurred. (Ask your postmaster for "
         "help or to contact tosa@rx.t-online.de to clarify.) (BL)", "5.0.0", "mx03.t-online.de", "CONNECT", False, 51),
        # --- Russia
        (["yandex-user.example", "example.ru.example"], f"554 5.7.1 [2] Message rejected under suspicion of SPAM; "
         f"https://ya.cc/1IrBc {R.randint(1700000000, 1760000000)}-{hx(8, ALNUM)}", "5.7.1", "mx.yandex.ru",
         "end of DATA", False, 52),
    ]:
        c = Case(domains=doms)
        if cmd == "CONNECT":
            hip = doc_ip("203.0.113")
            lines = [wrap(f"<{r}>: host {remote}[{hip}] refused to talk to me: {c.f(reply)}", 74) for r in c.rcpts]
            flds = [field(r, "failed", st, c.f(reply), remote) for r in c.rcpts]
            rows.append(row(c, postfix(c, lines, flds), cls))
        else:
            rows.append(row(c, pf_relay(c, reply, st, remote, cmd, delay=delay), cls))

    # --- providers' own bounces in their local language and charset
    P = [  # (domains, from, subject, subject charset, body, charset, cte, status, diag, reporting host, html, class)
        (["orange-user.example"], "MAILER-DAEMON@orange.fr", "Message non délivré / Undelivered message", "ISO-8859-1",
         "Bonjour,\n\nNous sommes désolés, votre message n'a pas pu être distribué à un ou plusieurs destinataires.\n"
         "We are sorry, your message could not be delivered to one or more recipients.\n\n"
         "<{a}>: 552 5.1.1 Boite du destinataire pleine. Recipient mailbox is full. OFR_417 [417]\n\n"
         "Ce message est généré automatiquement, merci de ne pas y répondre.\n"
         "This message was generated automatically, please do not reply.\n",
         "iso-8859-1", "qp", "5.2.2", "552 5.1.1 Boite du destinataire pleine. Recipient mailbox is full. OFR_417 [417]",
         "smtp-out.orange.fr", False, 22),
        (["sfr-user.example"], "MAILER-DAEMON@sfr.fr", "Échec de remise du message", "UTF-8",
         "Ce message vous est envoyé automatiquement par le système de messagerie SFR.\n\n"
         "Votre message n'a pas pu être distribué au destinataire suivant :\n\n  {a}\n\n"
         "Raison : l'adresse du destinataire est inconnue.\n"
         "Réponse du serveur : 550 5.1.1 <{a}>: Recipient address rejected: Utilisateur inconnu\n",
         "utf-8", "b64", "5.1.1", "550 5.1.1 <{a}>: Recipient address rejected: Utilisateur inconnu", "msfrf2.sfr.fr",
         False, 10),
        (["gmx-user.example"], "Mail Delivery System <mailer-daemon@gmx.net>", "Unzustellbar: Postfach voll", "UTF-8",
         "Diese Nachricht wurde automatisch vom Mailsystem erstellt.\n\n"
         "Ihre Nachricht konnte an einen oder mehrere Empfänger nicht zugestellt werden.\nDies ist ein dauerhafter Fehler.\n\n"
         "  {a}\n    Das Postfach des Empfängers ist voll.\n    Antwort des Servers: 552 5.2.2 Mailbox quota exceeded\n",
         "utf-8", "qp", "5.2.2", "552 5.2.2 Mailbox quota exceeded", "mout.gmx.net", False, 22),
        (["libero-user.example"], "MAILER-DAEMON@libero.it", "Messaggio non consegnato", "ISO-8859-1",
         "Gentile utente,\n\nil messaggio che hai inviato non è stato consegnato ai seguenti destinatari:\n\n"
         "  {a}\n  Motivo: l'indirizzo del destinatario non esiste (550 5.1.1 <{a}>: utente inesistente / User unknown)\n\n"
         "Questo è un messaggio generato automaticamente, ti preghiamo di non rispondere.\n",
         "iso-8859-1", "qp", "5.1.1", "550 5.1.1 <{a}>: utente inesistente / User unknown", "smtp-out.libero.it", False, 10),
        (["mailru-user.example"], "Mail Delivery System <mailer-daemon@corp.mail.ru>", "Письмо не доставлено", "windows-1251",
         "Это сообщение создано автоматически почтовой системой Mail.Ru.\n\n"
         "Ваше письмо не было доставлено следующему адресату:\n\n  {a}\n\n"
         "Причина: сообщение отклонено системой фильтрации как спам.\n"
         "Ответ сервера: 550 Message rejected as spam by Content Filtering.\n",
         "windows-1251", "qp", "5.7.1", "550 Message rejected as spam by Content Filtering.", "f{n}.mail.ru", False, 52),
        (["rambler-user.example"], "MAILER-DAEMON@rambler.ru", "Ваше письмо не доставлено", "KOI8-R",
         "Ваше письмо не может быть доставлено.\n\nАдресат: {a}\nПричина: почтовый ящик получателя переполнен.\n"
         "Ответ сервера: 552 5.2.2 Mailbox full\n", "koi8-r", "8bit", "5.2.2", "552 5.2.2 Mailbox full",
         "mxout.rambler.ru", False, 22),
        (["naver-user.example"], "MAILER-DAEMON@naver.com", "메일 발송 실패 안내", "UTF-8",
         "메일 발송 실패 안내\n\n보내신 메일이 다음 수신자에게 전달되지 못했습니다.\n\n받는 사람: {a}\n제목: {subj}\n"
         "실패 원인: 받는 사람의 메일 주소가 존재하지 않습니다. 주소를 확인해 주세요.\n"
         "서버 응답: 550 5.1.1 <{a}>: Recipient address rejected: User unknown\n",
         "utf-8", "b64", "5.1.1", "550 5.1.1 <{a}>: Recipient address rejected: User unknown", "cvsmtppost{n}.nm.naver.com",
         True, 10),
        (["daum-user.example"], "MAILER-DAEMON@daum.net", "메일이 반송되었습니다", "EUC-KR",
         "안녕하세요. Daum 메일 시스템입니다.\n\n보내신 메일이 아래 주소로 전달되지 못했습니다.\n\n받는 사람 : {a}\n"
         "실패 사유 : 받는 사람의 메일함 용량이 초과되어 메일을 받을 수 없습니다.\n(552 5.2.2 Mailbox quota exceeded)\n",
         "euc-kr", "qp", "5.2.2", "552 5.2.2 Mailbox quota exceeded", "mail-smtp{n}.daum.net", False, 22),
        (["qq-user.example"], "Mail Delivery System <MAILER-DAEMON@qq.com>", "退信：{subj}", "GB18030",
         "很抱歉您的邮件被退回来了……\n\n原邮件信息：\n时　间：2025年4月8日(星期二) 上午10:12\n主　题：{subj}\n收件人：{a}\n\n"
         "退信原因：\n收件人的邮箱已被冻结，无法接收邮件。\n(550 Mailbox is frozen. http://service.mail.qq.com/cgi-bin/help?"
         "subtype=1&&id=20022&&no=1000729)\n\n建议解决方案：\n请通过其他方式联系收件人。\n",
         "gb18030", "b64", "5.0.0", "550 Mailbox is frozen.", "smtpbg{n}.qq.com", True, 10),
        (["netease-user.example"], "postmaster@163.com", "系统退信", "GBK",
         "您好！\n\n很抱歉，您发送的邮件未能成功投递。\n\n收件人：{a}\n主题：{subj}\n退信原因：邮件大小超过对方服务器的限制。\n"
         "服务器返回：552 Requested mail action aborted: exceeded mailsize limit\n\n此邮件为系统自动发送，请勿回复。\n",
         "gbk", "qp", "5.3.4", "552 Requested mail action aborted: exceeded mailsize limit", "m{n}.mail.163.com", False, 23),
        (["sina-user.example"], "MAILER-DAEMON@sina.com", "邮件投递失败", "GB2312",
         "您好，这是新浪邮件系统。\n\n很遗憾，您发送的邮件无法投递到以下地址：\n\n{a}\n原因：收件人地址不存在。\n"
         "(550 5.1.1 <{a}>: Recipient address rejected: User unknown)\n",
         "gb2312", "b64", "5.1.1", "550 5.1.1 <{a}>: Recipient address rejected: User unknown", "mail{n}.sinamail.sina.com.cn",
         False, 10),
        (["biglobe-user.example"], "MAILER-DAEMON@biglobe.ne.jp", "配送できなかったメールのお知らせ", "ISO-2022-JP",
         "このメールは BIGLOBE のメールサーバから自動的に送信されています。\nお送りいただいたメールは、以下の理由により配送できませんでした。\n\n"
         "----- The following addresses had delivery problems -----\n<{a}>\n\n----- Non-delivered information -----\n"
         "宛先のメールボックスの容量が一杯のため、メールを受け取ることができません。\n(552 5.2.2 Mailbox full)\n",
         "iso-2022-jp", "7bit", "5.2.2", "552 5.2.2 Mailbox full", "mtaout{n}.biglobe.ne.jp", False, 22),
        (["nifty-user.example"], "MAILER-DAEMON@nifty.com", "配送エラーのお知らせ", "ISO-2022-JP",
         "このメールは @nifty のメールシステムから自動的に送信されています。\n次の宛先にメールを配送できませんでした。\n\n"
         "宛先: <{a}>\n理由: 宛先のメールアドレスが存在しません。\n      550 5.1.1 <{a}>... User Unknown\n",
         "iso-2022-jp", "b64", "5.1.1", "550 5.1.1 <{a}>... User Unknown", "mta{n}.nifty.com", False, 10),
        (["phone.example", "keitai.example"], "Mail Delivery Subsystem <MAILER-DAEMON@docomo.ne.jp>", "配信できませんでした",
         "Shift_JIS",
         "このメールは自動的に送信されています。\n\n次の宛先へのメールは配信できませんでした。\n\n  {a}\n\n理由: 宛先のメールアドレスは存在しません。\n",
         "shift_jis", "qp", "5.1.1", "550 Unknown user {a}", "mfsmax.docomo.ne.jp", False, 10),
        (["keitai.example", "phone.example"], "MAILER-DAEMON@au.com", "メール配信エラー", "Shift_JIS",
         "お客様が送信されたメールは、以下の宛先に配信できませんでした。\n\n宛先： {a}\n理由： 宛先のメールアドレスは存在しません。"
         "(550 <{a}>: User unknown)\n", "shift_jis", "8bit", "5.1.1", "550 <{a}>: User unknown", "lsean.ezweb.ne.jp",
         False, 10),
        (["phone.example", "keitai.example"], "Mail Delivery System <MAILER-DAEMON@softbank.ne.jp>", "受信拒否のお知らせ",
         "ISO-2022-JP",
         "送信されたメールは、受信者の受信拒否設定により配信できませんでした。\n\n宛先: {a}\n"
         "(550 5.7.1 <{a}>: Rejected by the recipient's receiving settings)\n",
         "iso-2022-jp", "7bit", "5.7.1", "550 5.7.1 <{a}>: Rejected by the recipient's receiving settings",
         "mx{n}.softbank.ne.jp", False, 50),
    ]
    for doms, frm, subj, scs, body, cs, cte, st, diag, rep, html, cls in P:
        c = Case(domains=doms)
        rep = rep.replace("{n}", str(R.randint(1, 40)))
        rows.append(row(c, provider_ndr(c, frm, c.f(subj), c.f(body), cs, cte, st, c.f(diag), rep, html=html,
                                        subj_cs=scs, q=scs in ("ISO-8859-1",), remote=None), cls))
    return rows


# ---------------------------------------------------------------- other ESPs and mailbox providers
def f_esp():
    rows = []

    def ses(c, diag, st, text=None):
        rep = f"a{R.randint(8, 48)}-{R.randint(1, 250)}.smtp-out.{R.choice(['us-west-2', 'eu-west-1', 'us-east-1'])}.amazonses.com"
        text = text or f"An error occurred while trying to deliver the mail to the following recipients:\n{c.a}\n"
        parts = [text_part(text), status_part(rep, [field(c.a, "failed", st, diag, order="ses")], arrival=True)]
        parts += returned(c, how_returned((("rfc822", 4), ("headers", 1))))
        return multi_msg(c, "MAILER-DAEMON@amazonses.com", "Delivery Status Notification (Failure)", parts,
                         preamble=None, via=rep, extra=[f"X-SES-Outgoing: 2025.{R.randint(1, 12):02}.{R.randint(1, 28):02}-{doc_ip('198.51.100')}",
                                                        f"Feedback-ID: ::1.{R.choice(['us-west-2', 'eu-west-1'])}.{hx(40, ALNUM)}=:AmazonSES"])

    c = Case()
    rows.append(row(c, ses(c, "smtp; 550 5.1.1 user unknown".split("; ", 1)[1], "5.1.1"), 10))
    c = Case()
    rows.append(row(c, ses(c, "550 5.1.1 Amazon SES did not send the message to this address because it is on the suppression "
                              "list for your account. For more information about removing addresses from the suppression "
                              "list, see the Amazon SES Developer Guide at https://docs.aws.amazon.com/ses/latest/"
                              "DeveloperGuide/sending-email-suppression-list.html", "5.1.1"), 10))
    c = Case()
    rows.append(row(c, ses(c, f"552 5.2.2 <{c.a}>: Recipient address rejected: Mailbox full", "5.2.2"), 22))
    c = Case()
    rows.append(row(c, ses(c, f"550 5.7.1 Email rejected per DMARC policy for {SENDER_DOMAIN}", "5.7.1"), 50))
    # SendGrid bounce forwarding, plain and with a DSN
    c = Case()
    text = ("This is an automatically generated message from SendGrid.\n\nI'm sorry to have to tell you that your message "
            "was not able to be\ndelivered to one of its intended recipients.\n\nIf you require assistance with this, "
            f"please contact SendGrid support.\n\n{c.a}: 550 5.1.1 The email account that you tried to reach does not "
            "exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.\n\n"
            "------ Original message headers ------\n\n" + original(c, headers_only=True))
    rows.append(row(c, plain_msg(c, "SendGrid <noreply@sendgrid.net>", "Undelivered Mail Returned to Sender", text,
                                 via=f"o{R.randint(1, 40)}.ptr{R.randint(1000, 9999)}.sendgrid.net"), 10))
    c = Case()
    text = ("This is an automatically generated message from SendGrid.\n\nI'm sorry to have to tell you that your message "
            "was not able to be\ndelivered to one of its intended recipients.\n\n"
            f"Recipient: {c.a}\nReason: 550 5.7.1 Message rejected: classified as spam by content filter\n")
    rep = f"o{R.randint(1, 40)}.ptr{R.randint(1000, 9999)}.sendgrid.net"
    parts = [text_part(text), status_part(rep, [field(c.a, "failed", "5.7.1",
                                                      "550 5.7.1 Message rejected: classified as spam by content filter", c.mx)])]
    parts += returned(c, "headers")
    rows.append(row(c, multi_msg(c, "SendGrid <noreply@sendgrid.net>", "Undelivered Mail Returned to Sender", parts, via=rep), 52))
    # Mailgun
    for reply, cls in [("552 5.2.2 <{a}>: Recipient address rejected: Mailbox full", 22),
                       ("550 5.7.1 <{a}>: Relaying denied", 54)]:
        c = Case()
        text = (f"Delivery to the following recipient failed permanently:\n\n    {c.a}\n\nTechnical details of permanent "
                f"failure:\n\nServer response: {c.f(reply)}\n\n----- Original message -----\n\n" + original(c, headers_only=True))
        rows.append(row(c, plain_msg(c, "Mailgun <mailer-daemon@mailgun.net>", "Delivery Status Notification (Failure)",
                                     text, via=f"m{R.randint(10, 99)}-{R.randint(100, 250)}.mailgun.net"), cls))
    # Postmark relay DSN
    c = Case()
    rep = f"smtp-{R.randint(10, 99)}.mtasv.net"
    parts = [text_part(f"Your message to {c.a} could not be delivered.\n\nThe receiving server answered:\n"
                       f"550 5.1.1 <{c.a}>: mailbox unavailable\n"),
             status_part(rep, [field(c.a, "failed", "5.1.1", f"550 5.1.1 <{c.a}>: mailbox unavailable", c.mx)])]
    parts += returned(c, "rfc822")
    rows.append(row(c, multi_msg(c, f"Mail Delivery System <MAILER-DAEMON@{rep}>", "Undelivered Mail Returned to Sender",
                                 parts, via=rep), 10))
    # SparkPost (Momentum) expiry
    c = Case()
    rep = f"mta{R.randint(100, 300)}.sparkpostmail.com"
    text = (f"This is the mail system at {rep}.\n\nYour message could not be delivered to the following recipient:\n\n"
            f"  {c.a}\n  554 5.4.7 [internal] exceeded max time without delivery\n")
    parts = [text_part(text), status_part(rep, [field(c.a, "failed", "5.4.7", "554 5.4.7 [internal] exceeded max time without delivery")])]
    parts += returned(c, "headers")
    rows.append(row(c, multi_msg(c, f"MAILER-DAEMON@{rep}", "Undelivered Mail Returned to Sender", parts, via=rep), 24))
    # Zoho
    for line, cls in [("{a}, ERROR CODE :550 - Requested action not taken: mailbox unavailable", 10),
                      ("{a}, ERROR CODE :552 - 5.2.2 Mailbox size limit exceeded", 22)]:
        c = Case()
        text = ("This message was created automatically by mail delivery software.\nA message that you sent could not be "
                f"delivered to one or more of its recipients. This is a permanent error.\n\n{c.f(line)}\n\n"
                "Received-Header:\n" + original(c, headers_only=True))
        rows.append(row(c, plain_msg(c, "mailer-daemon@zoho.com", "Undelivered Mail Returned to Sender", text,
                                     via=f"sender{R.randint(1, 9)}-of-o5{R.randint(1, 9)}.zoho.com"), cls))
    # Fastmail's own relay reporting a full mailbox
    c = Case()
    rows.append(row(c, pf_relay(c, "552 5.2.2 <{a}>: Over quota", "5.2.2", c.mx, "end of DATA",
                                host=f"mailout.{R.choice(['nyi', 'stl'])}.internal.messagingengine.com"), 22))
    # Proton
    c = Case(domains=["proton-user.example", "example.ch.example"])
    rows.append(row(c, pf_relay(c, "550 5.1.1 <{a}>: Recipient address rejected: Address does not exist", "5.1.1",
                                R.choice(["mail.protonmail.ch", "mailsec.protonmail.ch"])), 10))
    return rows


# ---------------------------------------------------------------- delay notices
def exim_warning(c, host, block, field_, hours=24):
    eid = exim_id()
    text = ("This message was created automatically by mail delivery software.\n"
            "A message that you sent has not yet been delivered to one or more of its\n"
            f"recipients after more than {hours} hours on the queue on {host}.\n\n"
            f"The message identifier is:     {eid}\nThe subject of the message is: {c.osubj}\n"
            f"The date of the message is:    {c.odate}\n\n"
            "The address to which the message has not yet been delivered is:\n\n" + block +
            "\nNo action is required on your part. Delivery attempts will continue for\n"
            "some time, and this warning may be repeated at intervals if the message\n"
            "remains undelivered. Eventually the mail delivery software will give up,\n"
            "and when that happens, the message will be returned to you.\n")
    b = f"{R.randint(1700000000, 1760000000)}-eximdsn-{R.randint(10**8, 10**9)}"
    parts = [text_part(text), status_part(host, [field_]), part("text/rfc822-headers", original(c, headers_only=True))]
    return multi_msg(c, f"Mail Delivery System <Mailer-Daemon@{host}>", f"Warning: message {eid} delayed {hours} hours",
                     parts, b=b, preamble=None, via=host, extra=["Auto-Submitted: auto-replied"])


def f_delays():
    rows = []
    # Postfix
    for reply, st, cmd, cls in [
        ("450 4.2.0 <{a}>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/{d}.html",
         "4.2.0", "RCPT TO", 70),
        ("452 4.2.2 <{a}>: Recipient address rejected: Mailbox full", "4.2.2", "RCPT TO", 22),
        ("450 4.7.1 Client host rejected: cannot find your reverse hostname, [{sip}]", "4.7.1", "RCPT TO", 50),
    ]:
        c = Case()
        rows.append(row(c, pf_relay(c, reply, st, c.mx, cmd, delay=True), cls))
    c = Case()
    t = f"connect to {c.mx}[{c.rip}]:25: Connection timed out"
    rows.append(row(c, postfix(c, f"<{c.a}>: {t}", [field(c.a, "delayed", "4.4.1", t, dtype="X-Postfix")], mode="delay"), 24))
    c = Case(domains=["flaky-dns.example", "lame.test"])
    t = f"Host or domain name not found. Name service error for name={c.mx} type=A: Host not found, try again"
    rows.append(row(c, postfix(c, f"<{c.a}>: {t}", [field(c.a, "delayed", "4.4.3", t, dtype="X-Postfix")], mode="delay"), 21))
    # Exim 24-hour warnings
    h = f"mail{R.randint(1, 9)}.{R.choice(DOMAINS)}"
    c = Case()
    blk = (f"  {c.a}\n    host {c.mx} [{c.rip}]\n    Delay reason: SMTP error from remote mail server after RCPT TO:<{c.a}>:\n"
           "    451 4.7.1 Greylisting in action, please come back later\n")
    rows.append(row(c, exim_warning(c, h, blk, field(c.a, "delayed", "4.0.0", "451 4.7.1 Greylisting in action, please come back later",
                                                      c.mx, orig=False)), 70))
    c = Case()
    blk = f"  {c.a}\n    Delay reason: connection refused by {c.mx} [{c.rip}]\n"
    rows.append(row(c, exim_warning(c, h, blk, field(c.a, "delayed", "4.0.0", orig=False), 48), 21))
    # sendmail 4-hour warnings
    for line, cls in [("Deferred: 421 4.7.0 {mx}: Too many concurrent connections, try again later", 70),
                      ("Deferred: 450 4.1.8 <{s}>: Sender address rejected: Domain not found", 50)]:
        c = Case()
        shost = f"smtp{R.randint(1, 9)}.{R.choice(DOMAINS)}"
        text = sm_text(None, f"<{c.a}>... {c.f(line)}\nWarning: message still undelivered after 4 hours\n"
                             "Will keep trying until message is 5 days old\n", warning=True)
        diag = c.f(line).split(": ", 1)[1]
        rows.append(row(c, sendmail(c, shost, text, [sm_field(c.a, "delayed", diag.split()[1], diag, c.mx,
                                                              [f"Will-Retry-Until: {rfcdate()}"])],
                                    "Warning: could not send message for past 4 hours", how="headers"), cls))
    # Exchange on-premises, no reason given
    c = Case()
    srv = f"EX{R.randint(1, 9):02}.{R.choice(['corp.example', 'firm.example'])}"
    rows.append(row(c, exchange(c, srv, "This message hasn't been delivered yet. Delivery will continue to be attempted.\n\n"
                                "The server will keep trying to deliver this message for the next 1 days, 22 hours and "
                                "14 minutes. You'll be notified if the message can't be delivered by that time.",
                                "#400 4.4.7 Message delayed ##", "4.4.7", "400 4.4.7 Message delayed", delayed=True,
                                hdrs=False, version="2013"), 70))
    # Exchange Online, DNS query failed
    c = Case(domains=["flaky-dns.example", "example.org"])
    srv = o365_server()
    rows.append(row(c, exchange(c, srv, "This message hasn't been delivered yet. Delivery will continue to be attempted.",
                                "Remote Server returned '451 4.4.0 DNS query failed. The error was: DNS query failed "
                                "with error: ServerFailure'", "4.4.0", "451 4.4.0 DNS query failed. The error was: DNS "
                                "query failed with error: ServerFailure", delayed=True, hdrs=True, version="2016",
                                frm=f"Microsoft Outlook <postmaster@{c.d}>"), 21))
    # Courier
    c = Case()
    ch = f"mail.{R.choice(DOMAINS)}"
    text = (f"This is a delivery status notification from {ch},\nrunning the Courier mail server, version 1.1.8.\n\n"
            f"The original message was received on {rfcdate()}\nfrom app2.{SENDER_DOMAIN} [192.0.2.11]\n\n"
            "                        -----------------------------------\n"
            "                         DELAYS IN DELIVERING YOUR MESSAGE\n"
            "                        -----------------------------------\n\n"
            "This is a warning message only.  Your message has not been delivered to\none or more of its recipients, "
            "but the mail server will keep trying.\n\n"
            f"<{c.a}>:\n    {c.mx} [{c.rip}]:\n>>> RCPT TO:<{c.a}>\n"
            "<<< 421 Too many concurrent SMTP connections; please try again later.\n")
    parts = [text_part(text), status_part(ch, [field(c.a, "delayed", "4.0.0", "421 Too many concurrent SMTP connections; "
                                                     "please try again later.", c.mx)])]
    parts += returned(c, "headers")
    rows.append(row(c, multi_msg(c, f"\"Courier mail server at {ch}\" <@>", "WARNING: delayed mail", parts, via=ch), 70))
    # MDaemon
    c = Case()
    mh = f"mdaemon.{R.choice(DOMAINS)}"
    text = ("The attached message has not yet been delivered because of transient errors.\n"
            "MDaemon will keep trying for another 4 days.\n\n"
            f"--- Session Transcript ---\n Attempting SMTP connection to [{c.mx}]\n Connected to [{c.rip}:25]\n"
            f" Waiting for protocol to start...\n <-- 220 {c.mx} ESMTP\n --> EHLO {mh}\n --> MAIL From:<{SENDER}>\n"
            f" <-- 250 2.1.0 Ok\n --> RCPT To:<{c.a}>\n <-- 452 4.2.2 <{c.a}>: Over quota, please try later\n"
            "--- End Transcript ---\n")
    rows.append(row(c, notice(c, f"MDaemon at {mh} <MDaemon@{mh}>", "Warning: message delivery delayed", text,
                              "rfc822", mh), 22))
    # PowerMTA delay DSN for a provider deferral
    c = Case(domains=["example.net", "ymail-user.example"])
    ph = f"pmta{R.randint(1, 9)}.{R.choice(DOMAINS)}"
    r = (f"421 4.7.0 [TSS04] Messages from {OUR_IP} temporarily deferred due to unexpected volume or user complaints - "
         "4.16.55.1; see https://postmaster.yahooinc.com/error-codes")
    text = (f"This is a delay notification from {ph}.\n\nYour message to {c.a} has not been delivered yet.\n"
            f"The remote server answered:\n\n{r}\n\nDelivery will be retried.\n")
    parts = [text_part(text), status_part(ph, [field(c.a, "delayed", "4.7.0", r, "mta6.am0.yahoodns.net")],
                                          [f"X-PowerMTA-VirtualMTA: vmta{R.randint(1, 20)}"]), part("text/rfc822-headers", original(c, headers_only=True))]
    rows.append(row(c, multi_msg(c, f"Mail Delivery Subsystem <mailer-daemon@{ph}>", "Delayed Mail", parts, via=ph), 70))
    return rows


# ---------------------------------------------------------------- hard cases
def mbox_from(d=None):
    d = d or when()
    return f"From MAILER-DAEMON {DAYS[d.weekday()]} {MONTHS[d.month - 1]} {d.day:2} {d.hour:02}:{d.minute:02}:{d.second:02} {d.year}\n"


def arf(c, ftype, fb_fields, how="rfc822", agent="FBL/1.0", frm=("Feedback Loop", "fbl@isp.example"), intro=None):
    b = f"----=_ARF_{R.randint(10**6, 10**7)}_{hx(6)}"
    o = original(c, headers_only=how == "headers")
    opart = ("Content-Type: message/rfc822\nContent-Disposition: inline\n\n" + o if how == "rfc822"
             else "Content-Type: text/rfc822-headers\n\n" + o)
    fb = f"Feedback-Type: {ftype}\nUser-Agent: {agent}\nVersion: 1\n" + "\n".join(fb_fields) + "\n"
    name, a = frm
    dom = a.split("@")[1]
    intro = intro or (f"This is an email abuse report for an email message received from IP {OUR_IP} on {rfcdate()}.\n"
                      "For more information about this format please see http://tools.ietf.org/html/rfc5965\n")
    return (f"Return-Path: <{a}>\nReceived: from {dom} ({dom} [{doc_ip('198.51.100')}])\n\tby in2.{BD} (cartero) with "
            f"ESMTPS id {hx(14)}\n\tfor <{c.to if c.tok_to else 'fbl@' + BD}>; {rfcdate()}\n"
            f"From: {name} <{a}>\nDate: {rfcdate()}\nSubject: {'Abuse report' if R.random() < 0.5 else 'FW: ' + c.osubj}\n"
            f"To: {c.to if c.tok_to else 'fbl@' + BD}\nMessage-ID: {mid(dom)}\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/report; report-type=feedback-report;\n\tboundary=\"{b}\"\n\n"
            f"--{b}\nContent-Type: text/plain; charset=\"US-ASCII\"\nContent-Transfer-Encoding: 7bit\n\n{intro}\n"
            f"--{b}\nContent-Type: message/feedback-report\n\n{fb}\n--{b}\n{opart}\n--{b}--\n")


def auto_reply(c, frm_name, subject, body, cs, cte, hdrs, q=False):
    subj = subject if subject.isascii() else hdr_words(subject, cs.upper() if cs != "Shift_JIS" else cs, q)
    name = frm_name if frm_name.isascii() else hdr_words(frm_name, cs.upper() if cs != "Shift_JIS" else cs)
    return (f"Return-Path: <>\nReceived: from {c.mx} ({c.mx} [{c.rip}])\n\tby in2.{BD} (cartero) with ESMTPS id {hx(14)}\n"
            f"\tfor <{c.to}>; {rfcdate()}\nFrom: {name} <{c.a}>\nTo: {c.to}\nSubject: {subj}\nDate: {rfcdate()}\n"
            f"Message-ID: {mid(c.d)}\nIn-Reply-To: {c.mid}\nReferences: {c.mid}\n" + "".join(h + "\n" for h in hdrs) +
            f"MIME-Version: 1.0\nContent-Type: text/plain; charset=\"{cs}\"\n" +
            (f"Content-Transfer-Encoding: {CTES[cte]}\n" if cte else "") + "\n" + encode_body(body, cs, cte))


def f_oddities():
    rows = []
    gw = lambda: f"{R.choice(['mailgw', 'mx-in', 'smtpgw', 'filter'])}{R.randint(1, 9)}.{R.choice(DOMAINS)}"

    def generic_dsn(c, text, fields, host=None, cte=None, how=None, subject="Delivery Status Notification (Failure)",
                    raw_status=None):
        host = host or gw()
        parts = [text_part(text, cte=cte)]
        if raw_status is not None:
            parts.append("Content-Type: message/delivery-status\n\n" + raw_status)
        else:
            parts.append(status_part(host, fields))
        parts += returned(c, how or how_returned())
        return multi_msg(c, f"Mail Delivery System <MAILER-DAEMON@{host}>", subject, parts, via=host)

    # 1-2. Status 5.0.0 only, the reply only in the text
    for reply, cls in [("550 5.1.1 <{a}>: Recipient address rejected: User unknown", 10),
                       ("552 5.2.2 <{a}>: Mailbox full - quota exceeded", 22)]:
        c = Case()
        text = (f"Your message could not be delivered to one or more recipients.\n\n{c.a}\n"
                f"  The remote server {c.mx} [{c.rip}] answered:\n  {c.f(reply)}\n")
        rows.append(row(c, generic_dsn(c, text, [field(c.a, "failed", "5.0.0", orig=False)]), cls))
    # 3. Final-Recipient of type LOCAL; the address only in Original-Recipient
    c = Case()
    text = f"The following message could not be delivered.\n\nRecipient: {c.local}\nReason: no such mailbox\n"
    rows.append(row(c, generic_dsn(c, text, [field(c.a, "failed", "5.1.1", f"550 5.1.1 {c.local}... no such mailbox",
                                                  orig=True, final=f"LOCAL; {c.local}")], host=f"mail.{c.d}"), 10))
    # 4. Final-Recipient of type X400, SMTP address in Original-Recipient and text
    c = Case(domains=["legacy-corp.example", "gov.example"])
    sur, given = c.local.split(".")[0].rstrip(string.digits).capitalize(), R.choice(["Ana", "Jon", "Eva", "Raj"])
    x400 = f"x400; /C=US/ADMD= /PRMD=LEGACY/O=HQ/OU1=MAIL/S={sur}/G={given}/"
    text = (f"Your message\n\n  To:      {c.a}\n  Subject: {c.osubj}\n\nwas not delivered to the following recipient:\n\n"
            f"  {c.a}\n  Reason: The recipient name is not recognized\n")
    rows.append(row(c, generic_dsn(c, text, [field(c.a, "failed", "5.1.1", None, orig=True, final=x400)],
                                   host=f"x400gw.{c.d}"), 10))
    # 5. recipient blocks glued together without blank lines
    c = Case(n=2)
    text = "Delivery to the following recipients failed permanently:\n\n" + "".join(f"  {r}\n" for r in c.rcpts)
    raw = (f"Reporting-MTA: dns; {gw()}\nArrival-Date: {rfcdate()}\n" +
           "".join(f"Final-Recipient: rfc822; {r}\nAction: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.{r.split('@')[1]}\n"
                   f"Diagnostic-Code: smtp; 550 5.1.1 <{r}>: User unknown\n" for r in c.rcpts))
    rows.append(row(c, generic_dsn(c, text, None, raw_status=raw), 10))
    # 6. two recipients, differently worded reasons of the same class
    c = Case(n=2)
    r1, r2 = c.rcpts
    d1 = f"550 5.1.1 <{r1}>: Recipient address rejected: User unknown in virtual mailbox table"
    d2 = f"550 5.2.1 <{r2}>: Recipient address rejected: This account has been disabled"
    lines = [said(r1, f"mx.{r1.split('@')[1]}", doc_ip("203.0.113"), d1), said(r2, f"mx.{r2.split('@')[1]}", doc_ip("203.0.113"), d2)]
    rows.append(row(c, postfix(c, lines, [field(r1, "failed", "5.1.1", d1, f"mx.{r1.split('@')[1]}"),
                                          field(r2, "failed", "5.2.1", d2, f"mx.{r2.split('@')[1]}")]), 10))
    # 7. HTML-only bounce
    c = Case()
    h = gw()
    html = ("<html><head><title>Undeliverable message</title></head><body style=\"font-family:Arial\">\n"
            "<h3>Your message could not be delivered</h3>\n"
            f"<p>Delivery to the following recipient failed:<br><b>{c.a}</b></p>\n"
            f"<p>Subject: {html_escape(c.osubj)}</p>\n"
            f"<p>Reason: <code>552 5.2.2 &lt;{c.a}&gt;: Mailbox full</code></p>\n"
            "<p style=\"color:#888888\">This notification was generated automatically.</p>\n</body></html>\n")
    rows.append(row(c, headers(c, f"Postmaster <postmaster@{h}>", f"Undeliverable: {c.osubj}",
                               "text/html; charset=utf-8", ["Content-Transfer-Encoding: quoted-printable"], via=h)
                    + "\n" + enc_qp(html), 22))
    # 8. whole body base64 (qmail-style text)
    c = Case(domains=["no-such-domain.example", "vanished.test"])
    h = f"mail.{R.choice(DOMAINS)}"
    text = (f"Hi. This is the qmail-send program at {h}.\nI'm afraid I wasn't able to deliver your message to the "
            "following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n"
            f"<{c.a}>:\nSorry, I couldn't find any host named {c.d}. (#5.1.2)\n\n"
            "--- Below this line is a copy of the message.\n\n" + original(c))
    rows.append(row(c, plain_msg(c, f"MAILER-DAEMON@{h}", "failure notice", text, "us-ascii", "b64", via=h), 21))
    # 9. quoted-printable body whose soft line breaks split the reply
    c = Case(local="very.long.recipient.name.for.testing")
    h = f"mx-out{R.randint(1, 9)}.{R.choice(DOMAINS)}"
    blk = (f"  {c.a}\n    host {c.mx} [{c.rip}]\n    SMTP error from remote mail server after RCPT TO:<{c.a}>: 550 5.1.1 "
           f"<{c.a}>: Recipient address rejected: User unknown in virtual mailbox table\n")
    rows.append(row(c, exim(c, h, [blk], dsn=False, cte="qp"), 10))
    # 10. mbox file: a delay and the final bounce for the same message
    c = Case()
    h = f"relay{R.randint(1, 9)}.{R.choice(DOMAINS)}"
    t = f"connect to {c.mx}[{c.rip}]:25: Connection timed out"
    m1 = postfix(c, f"<{c.a}>: {t}", [field(c.a, "delayed", "4.4.1", t, dtype="X-Postfix")], h, "delay", "headers")
    m2 = postfix(c, f"<{c.a}>: {t}", [field(c.a, "failed", "4.4.1", t, dtype="X-Postfix")], h, "fail", "headers")
    rows.append(row(c, mbox_from() + m1 + "\n" + mbox_from() + m2 + "\n", 24, lf=True))
    # 11. mbox file: the same recipient rejected twice (two sends)
    c = Case()
    m1 = pf_relay(c, "550 5.1.1 <{a}>: Recipient address rejected: User unknown", "5.1.1", c.mx, how="rfc822")
    m2 = pf_relay(c, "550 5.1.1 <{a}>: Recipient address rejected: User unknown", "5.1.1", c.mx, how="rfc822")
    rows.append(row(c, mbox_from() + m1 + "\n" + mbox_from() + m2 + "\n", 10, lf=True))
    # 12. no reply code, a worded reason
    c = Case()
    text = (f"This is the mail server at {c.d}.\n\nThe mailbox of the following recipient does not exist:\n\n    {c.a}\n\n"
            "Your message has not been delivered.\n\n------- Original message -------\n" + original(c))
    rows.append(row(c, plain_msg(c, f"postmaster@{c.d}", "Undeliverable mail", text, mime=False, via=f"mail.{c.d}"), 10))
    # 13. no reply code and no reason at all
    c = Case()
    h = gw()
    text = f"Your message could not be delivered to the following recipient:\n\n    {c.a}\n\nSubject: {c.osubj}\n"
    rows.append(row(c, plain_msg(c, f"Mail Delivery System <MAILER-DAEMON@{h}>", "Returned mail", text, via=h), 1))
    # 14. status code says unknown user, the reply says mailbox full
    c = Case()
    d = f"552 5.2.2 <{c.a}>: Mailbox quota exceeded"
    rows.append(row(c, postfix(c, said(c.a, c.mx, c.rip, d, "end of DATA"), [field(c.a, "failed", "5.1.1", d, c.mx)]), 22))
    # 15. Status 2.0.0 on a failed recipient whose reply is user unknown
    c = Case()
    text = f"Delivery to the following recipient failed:\n\n  {c.a}\n\nRemote server said: 550 User unknown\n"
    rows.append(row(c, generic_dsn(c, text, [field(c.a, "failed", "2.0.0", "550 User unknown", c.mx, orig=False)]), 10))
    # 16-17. success DSNs
    c = Case()
    q = hx(10)
    rows.append(row(c, postfix(c, f"<{c.a}>: delivery via {c.mx}[{c.rip}]:25: 250 2.0.0 Ok: queued as {q}",
                               [field(c.a, "relayed", "2.0.0", f"250 2.0.0 Ok: queued as {q}", c.mx)], mode="success",
                               how="headers"), "none"))
    h = f"mail.{R.choice(DOMAINS)}"
    c = Case(rcpts=[f"{R.choice(LOCALS)}@{h.split('.', 1)[1]}"])
    text = (f"This is a delivery status notification from {h},\nrunning the Courier mail server, version 1.1.8.\n\n"
            f"The original message was received on {rfcdate()}\nfrom {OUR_MTA} [{OUR_IP}]\n\n"
            "Your message was successfully delivered to the following address(es):\n\n"
            f"<{c.a}>: delivered to mailbox\n")
    parts = [text_part(text), status_part(h, [field(c.a, "delivered", "2.0.0", "250 Ok", orig=False)])]
    parts += returned(c, "headers")
    rows.append(row(c, multi_msg(c, f"\"Courier mail server at {h}\" <@>", "SUCCESS: delivered mail", parts, via=h), "none"))
    # 18-21. auto-replies
    for frm_name, subject, body, cs, cte, hdrs, q in [
        ("Ben Okafor", "Automatic reply: {subj}",
         "Thank you for your message. I'm out of the office until 22 April with limited access to email.\n"
         "For urgent requests, please contact our front desk.\n",
         "us-ascii", None, ["Auto-Submitted: auto-generated", "X-Auto-Response-Suppress: All",
                            "X-MS-Exchange-Inbox-Rules-Loop: {a}", "Thread-Topic: {subj}"], False),
        ("Lena Bauer", "Abwesenheitsnotiz: {subj}",
         "Guten Tag,\n\nich bin bis zum 30. Mai nicht im Büro. Ihre Nachricht wird nicht weitergeleitet.\n"
         "In dringenden Fällen wenden Sie sich bitte an unser Sekretariat.\n\nMit freundlichen Grüßen\nLena Bauer\n",
         "utf-8", "qp", ["Auto-Submitted: auto-replied", "X-Autoreply: yes"], True),
        ("Chloé Martin", "Absence du bureau : {subj}",
         "Bonjour,\n\nJe suis en congés jusqu'au 12 août inclus. Je répondrai à votre message dès mon retour.\n"
         "Pour toute urgence, merci de contacter le standard.\n\nCordialement,\nChloé Martin\n",
         "iso-8859-15", "b64", ["Auto-Submitted: auto-replied (vacation)", "Precedence: bulk"], True),
        ("山田 花子", "不在のお知らせ: {subj}",
         "メールありがとうございます。\n申し訳ありませんが、8月15日まで夏季休暇のため不在にしております。\n"
         "休暇明けに確認のうえご連絡いたします。\n", "ISO-2022-JP", "7bit", ["Auto-Submitted: auto-replied", "X-Autorespond: yes"], False),
    ]:
        c = Case(mode=choose([("to", 5), ("none", 2)]))
        rows.append(row(c, auto_reply(c, frm_name, c.f(subject), body, cs, cte, [c.f(h) for h in hdrs], q), 60, "auto_reply"))
    # 22-23. challenge-response
    c = Case(mode="to")
    text = ("Hello,\n\nI use a spam blocker that asks new senders to verify themselves once. Please click the link below "
            "to confirm that you sent this message, and it will be delivered:\n\n"
            f"    https://verify.example.net/confirm?id={hx(24, 'abcdef0123456789')}\n\n"
            "You will only have to do this once. Messages from unconfirmed senders are deleted after 7 days.\n")
    rows.append(row(c, auto_reply(c, c.local, f"Please confirm your message to {c.a}", text, "us-ascii", None,
                                  ["Auto-Submitted: auto-replied", f"X-Challenge-ID: {hx(16, 'abcdef0123456789')}"]),
                    100, "challenge_response"))
    c = Case(mode="to")
    text = ("Bonjour,\n\nJe protège ma messagerie contre les messages indésirables. Pour que votre message me soit remis, "
            "merci de confirmer votre envoi en cliquant sur le lien ci-dessous :\n\n"
            f"    https://valider.example.org/v/{hx(20, 'abcdef0123456789')}\n\n"
            "Cette opération n'est à faire qu'une seule fois.\n\nMerci de votre compréhension.\n")
    rows.append(row(c, auto_reply(c, c.local, "Confirmation de votre envoi / Please confirm your message", text, "utf-8",
                                  "qp", ["Auto-Submitted: auto-replied", "Precedence: junk"]), 100, "challenge_response"))
    # 24-26. ARF reports
    c = Case(mode=choose([("both", 2), ("orig", 2)]))
    f = [f"Original-Mail-From: <b-{c.tok}@{BD}>" if c.tok_orig or c.tok_to else f"Original-Mail-From: <{SENDER}>",
         f"Original-Rcpt-To: {c.a}", f"Received-Date: {rfcdate()}", f"Source-IP: {OUR_IP}",
         f"Reported-Domain: {SENDER_DOMAIN}", "Authentication-Results: mta1.fbl.example; dkim=pass header.d=" + SENDER_DOMAIN]
    rows.append(row(c, arf(c, "abuse", f, agent="Yahoo!-Mail-Feedback/2.0",
                           frm=("Yahoo! Mail AntiSpam Feedback", "feedback@arf.mail.yahoo.com"),
                           intro=f"This is an email abuse report for an email message from {SENDER_DOMAIN} on {rfcdate()}\n"),
                    "complaint", "arf"))
    c = Case(mode=choose([("both", 2), ("to", 1)]))
    f = [f"Original-Rcpt-To: <{c.a}>", f"Arrival-Date: {rfcdate()}", f"Source-IP: {OUR_IP}",
         f"Reporting-MTA: dns; fbl.isp.example"]
    rows.append(row(c, arf(c, "abuse", f, "headers", "Cloudmark-FBL/1.0", ("ISP abuse desk", "abuse@isp.example")),
                    "complaint", "arf"))
    c = Case(mode="both")
    f = [f"Original-Rcpt-To: {c.a}", f"Arrival-Date: {rfcdate()}", f"Source-IP: {OUR_IP}"]
    rows.append(row(c, arf(c, "not-spam", f, "rfc822", "FBL/1.0", ("Mail feedback", "feedback@mailbox.example")),
                    "none", "arf"))
    return rows


# ---------------------------------------------------------------- writer
FOLDERS = [
    ("gmail", f_gmail), ("microsoft", f_microsoft), ("yahoo-aol", f_yahoo_aol), ("postfix", f_postfix),
    ("exim", f_exim), ("sendmail-modern", f_sendmail), ("exchange-onprem", f_exchange), ("appliances", f_appliances),
    ("isp-worldwide", f_isp), ("esp", f_esp), ("delays", f_delays), ("oddities", f_oddities),
]


def write_folder(path, rows):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    with open(os.path.join(path, "labels.tsv"), "w", newline="\n") as labels:
        labels.write("# file\tkind\taddress\tclass\ttoken\n")
        for i, r in enumerate(rows):
            name = f"{i + 1:03}.eml"
            crlf = R.random() < 0.5 and not r["lf"]
            data = r["eml"].replace("\n", "\r\n") if crlf else r["eml"]
            with open(os.path.join(path, name), "wb") as f:
                f.write(data.encode("utf-8", "surrogateescape"))
            labels.write(f"{name}\t{r['kind']}\t{r['addr']}\t{r['cls']}\t{r['tok']}\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, fn in FOLDERS:
        write_folder(os.path.join(OUT, name), fn())


if __name__ == "__main__":
    main()
