-- Messages are written by one statement only (store/commit.rs), which stores a row only when its
-- room and its user exist, in the same snapshot that bumps the room's last_seq. The foreign keys
-- repeated those checks row by row through triggers that also lock the room's and the user's
-- rows (FOR KEY SHARE, a multixact when two commit lanes hold them): nearly half of the cost of
-- storing a message. Rooms and users are never deleted.
ALTER TABLE messages
    DROP CONSTRAINT messages_room_id_fkey,
    DROP CONSTRAINT messages_user_id_fkey;
