"""E-mail: every message is a row of ``mail_outbox`` first (``outbox.enqueue``, inside the caller's transaction),
then the mail job (``job``: one replica at a time) renders it (``templates``) and sends it over SMTP (``smtp``),
with retries and backoff. ``linktokens``: the single-use links of verification and password-reset e-mails."""
