-- A station's reservation reads the order's lines (so do the order's pages):
-- found by the order, not by reading every line of every order.
CREATE INDEX order_lines_order ON order_lines(order_id);
-- A card's balance is the sum of its ledger, read from the index alone.
CREATE INDEX ledger_card_amount ON ledger(card_uid, amount);
DROP INDEX ledger_card;
