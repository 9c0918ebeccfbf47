CREATE TABLE rooms (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    private    BOOLEAN NOT NULL DEFAULT FALSE,
    owner_id   UUID NOT NULL REFERENCES users (id),
    -- Highest seq handed out in this room; bumped in the same transaction that inserts the
    -- messages, so seqs are gapless and never repeat across nodes.
    last_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT rooms_name_format CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$')
);

CREATE TABLE room_members (
    room_id  BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);

CREATE INDEX room_members_user_idx ON room_members (user_id);
