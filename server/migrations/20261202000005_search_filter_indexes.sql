-- Filtered vector search reads the items a filter keeps from an index alone: category and
-- price first (the filters), then what makes an embedding current (status, content version),
-- so the exact path of a selective filter touches no item row before it knows the 20 nearest.
CREATE INDEX ix_rental_items_search ON rental_items (category, price_per_day, embed_status, content_version);
CREATE INDEX ix_rental_items_price ON rental_items (price_per_day, embed_status, content_version);
