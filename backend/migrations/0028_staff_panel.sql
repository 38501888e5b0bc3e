-- The staff panel (issue 14): the registrar edits the postage of postal
-- orders in the panel, per university (NULL: the configured default,
-- `orders.postage_yen`); and a refund the office pays back by hand (Smart
-- Pit cash, a station's e-money terminal) is marked once it was paid back,
-- so the dashboard counts only those still to pay.
ALTER TABLE universities ADD COLUMN postage INTEGER CHECK (postage IS NULL OR postage >= 0);
ALTER TABLE orders ADD COLUMN refund_paid_back_at INTEGER;
