-- Stored responses of POST /v1/responses (`store`, the default): what `previous_response_id`
-- continues and GET /v1/responses/{id} returns, kept 30 days (`expires_at`).
--
-- One row per turn: the turn's own input messages and the reply (`turn`, a JSON array of
-- {"role","content"}; never the request's `instructions`, which do not carry over), and the
-- response object as it was answered (`body`). A continuation follows `previous_response_id`
-- back from row to row. No foreign key on it: deleting one response leaves the later ones,
-- which then continue from the turns that remain. `message_id` is the id of the reply's
-- message item, which a later request may name in an `item_reference` instead of repeating it.
create table responses (
    id                   text primary key,
    message_id           text not null,
    user_id              text not null references users(id) on delete cascade,
    previous_response_id text,
    turn                 text not null,
    body                 text not null,
    created_at           integer not null,
    expires_at           integer not null
);

-- Deleting a user cascades here.
create index responses_by_user on responses (user_id);

create index responses_by_message on responses (message_id);

-- Each write deletes some expired rows, oldest first.
create index responses_by_expiry on responses (expires_at);
