// @generated automatically by Diesel CLI.

diesel::table! {
    use diesel::sql_types::*;
    use pgvector::sql_types::*;

    messages (id) {
        id -> Uuid,
        room_id -> Int8,
        seq -> Int8,
        user_id -> Uuid,
        body -> Text,
        client_msg_id -> Nullable<Text>,
        created_at -> Timestamptz,
        embedding -> Nullable<Vector>,
    }
}

diesel::table! {
    room_members (room_id, user_id) {
        room_id -> Int8,
        user_id -> Uuid,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    rooms (id) {
        id -> Int8,
        name -> Text,
        private -> Bool,
        owner_id -> Uuid,
        last_seq -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        password_hash -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(messages -> users (user_id));
diesel::joinable!(room_members -> rooms (room_id));
diesel::joinable!(room_members -> users (user_id));
diesel::joinable!(rooms -> users (owner_id));

diesel::allow_tables_to_appear_in_same_query!(messages, room_members, rooms, users,);
