//! The simulator and a gateway with the production rule set (`config/demo.toml`, whose rules
//! equal `config/gateway.toml`'s), in-process on free ports, and its seeded users.

use outseta_gateway::demo::{self, Demo, DemoUser, Listen};

const LOCAL: &str = "127.0.0.1:0";

/// Starts both; `cors` replaces the allowed origins when given.
pub async fn start(cors: Option<Vec<String>>) -> Demo {
    let mut config = demo::load_config(None).expect("config/demo.toml");
    config.server.admin_listen = LOCAL.parse().unwrap();
    if let Some(origins) = cors {
        config.cors.allowed_origins = origins;
    }
    demo::start(config, Listen::Exactly(LOCAL.parse().unwrap()))
        .await
        .expect("start the simulator and the gateway")
}

/// The seeded user with `email`, with the token the demo minted for them.
pub fn user<'a>(d: &'a Demo, email: &str) -> &'a DemoUser {
    d.users
        .iter()
        .find(|u| u.user.email == email)
        .unwrap_or_else(|| panic!("seeded user {email}"))
}
