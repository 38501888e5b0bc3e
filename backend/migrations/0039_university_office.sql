-- Universities are tenants (issue 15): each has its own office that users
-- contact (desk, hours, phone, e-mail) and its own sender name on the mails
-- about its orders. Empty: the deployment's [contact] and no sender name.
-- Its operators' addresses for alerts about its stations (comma-separated;
-- the deployment's stations.alert_emails get every station's). An outbox row
-- keeps the sender name it is sent with.
ALTER TABLE universities ADD COLUMN mail_sender TEXT NOT NULL DEFAULT '';
ALTER TABLE universities ADD COLUMN desk_ja TEXT NOT NULL DEFAULT '';
ALTER TABLE universities ADD COLUMN desk_en TEXT NOT NULL DEFAULT '';
ALTER TABLE universities ADD COLUMN hours_ja TEXT NOT NULL DEFAULT '';
ALTER TABLE universities ADD COLUMN hours_en TEXT NOT NULL DEFAULT '';
ALTER TABLE universities ADD COLUMN contact_phone TEXT NOT NULL DEFAULT '';
ALTER TABLE universities ADD COLUMN contact_email TEXT NOT NULL DEFAULT '';
ALTER TABLE universities ADD COLUMN alert_emails TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN sender_name TEXT NOT NULL DEFAULT '';
