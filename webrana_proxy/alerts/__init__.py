"""Alerts (issue 14): at 80 % and 100 % of the monthly request quota, of the account's spend cap, of each key's
spend cap and of a team member's monthly request and spend limits in the team (issue 15), one alert per threshold
and period, whichever replica saw it (``record``: a row, an e-mail and, when the user configured one, a webhook
delivery, in one transaction under one dedup key); the console's banner rides on the answers the console already
asks for (``banner``); webhooks are signed (``signing``) and sent by one job at a time with retries
(``delivery``) to addresses checked at send time (``webrana_proxy.netguard``)."""
