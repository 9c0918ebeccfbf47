ALTER TABLE messages
    ADD CONSTRAINT messages_room_id_fkey FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE,
    ADD CONSTRAINT messages_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id);
