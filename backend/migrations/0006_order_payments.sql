-- O-4: orders paid by credit card through PayPal. The PayPal order is created
-- once per order (its request id is the order's id) and the capture id marks
-- the order paid once, whether the return page or the webhook comes first.
ALTER TABLE orders ADD COLUMN paypal_order_id TEXT;
ALTER TABLE orders ADD COLUMN capture_id TEXT;
CREATE UNIQUE INDEX orders_paypal_order ON orders(paypal_order_id) WHERE paypal_order_id IS NOT NULL;
CREATE UNIQUE INDEX orders_capture ON orders(capture_id) WHERE capture_id IS NOT NULL;
