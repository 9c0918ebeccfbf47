//! The wire: JSON frames tagged by `"type"`, client→server in [`client`], server→client in
//! [`server`], and the shared message shape in [`message`].

pub mod client;
pub mod message;
pub mod server;
pub mod validate;

pub use client::{ClientFrame, ParsedFrame};
pub use message::Message;
pub use server::ServerFrame;
