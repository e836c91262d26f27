-- Saved views: a UI user's named profile or diff page states (the page path and its query string: service,
-- range, filters, view). Private to the user, deleted with the user; SaveView caps how many one user keeps.
CREATE TABLE saved_views (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL,
    path       text NOT NULL,
    query      text NOT NULL DEFAULT '',
    service    text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, name)
);
