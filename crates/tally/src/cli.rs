//! Hand-rolled command line parsing.

use std::net::SocketAddr;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: tally serve [options]

options:
  --sip-addr ADDR     UDP address SIP listens on        (default 0.0.0.0:5060)
  --advertise H:P     host:port written in Via/Contact  (default: the SIP address,
                      or this host's outbound address when it is 0.0.0.0)
  --http-addr ADDR    REST address                      (default 127.0.0.1:8887)
  --data-dir DIR      data directory                    (default ./tally-data)
  --database URL      sqlite:… or postgres://…          (default sqlite://DIR/tally.db)
  --demo              create tenant demo.tally.local with extensions 101-105
  --node N            Snowflake node number, < 1024     (default 0)";

#[derive(Debug)]
pub enum Command {
    Help,
    Serve(Options),
}

#[derive(Clone, Debug)]
pub struct Options {
    pub sip_addr: SocketAddr,
    pub advertise: Option<String>,
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Option<String>,
    pub demo: bool,
    pub node: u16,
}

pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        Some("serve") => {}
        Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("missing command".into()),
    }
    let mut options = Options {
        sip_addr: SocketAddr::from(([0, 0, 0, 0], 5060)),
        advertise: None,
        http_addr: SocketAddr::from(([127, 0, 0, 1], 8887)),
        data_dir: PathBuf::from("./tally-data"),
        database: None,
        demo: false,
        node: 0,
    };
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--sip-addr" => options.sip_addr = addr(name, &value()?)?,
            "--http-addr" => options.http_addr = addr(name, &value()?)?,
            "--advertise" => options.advertise = Some(value()?),
            "--data-dir" => options.data_dir = PathBuf::from(value()?),
            "--database" => options.database = Some(value()?),
            "--node" => {
                let text = value()?;
                options.node = text
                    .parse()
                    .ok()
                    .filter(|node| *node < cdr::NODE_COUNT)
                    .ok_or_else(|| format!("--node: {text:?} is not a number below 1024"))?;
            }
            "--demo" => options.demo = true,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(Command::Serve(options))
}

fn addr(name: &str, text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{name}: {text:?} is not an address like 127.0.0.1:5060"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_serve_options() {
        let Command::Serve(o) = parse(&args(&[
            "serve",
            "--sip-addr",
            "127.0.0.1:5070",
            "--http-addr=127.0.0.1:9000",
            "--demo",
            "--node",
            "7",
        ]))
        .unwrap() else {
            panic!("not serve")
        };
        assert_eq!(o.sip_addr.port(), 5070);
        assert_eq!(o.http_addr.port(), 9000);
        assert!(o.demo);
        assert_eq!(o.node, 7);
        assert!(parse(&args(&["serve", "--node", "1024"])).is_err());
        assert!(parse(&args(&["serve", "--bogus"])).is_err());
        assert!(parse(&args(&["serve", "--sip-addr"])).is_err());
        assert!(parse(&args(&[])).is_err());
    }
}
