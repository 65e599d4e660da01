-- products(orderBy:) pages through a ranking with one backward index scan:
-- each ranking sorts by its figure and then the id, both descending, and a
-- page starts after a row comparison, (figure, id) < (cursor's figure, id),
-- which these indexes answer directly however deep the page. The job updates
-- the figures, so counting an order also updates these indexes for the
-- products it sold (a handful of entries per run).
create index products_sales_count_idx on products (sales_count, id);
create index products_revenue_idx on products (total_revenue_cents, id);
create index products_rating_idx on products (rating, id);
create index products_created_at_idx on products (created_at, id);
