//! Several nodes on one PostgreSQL database (issue 15; DESIGN.md "More
//! than one machine"): this node's liveness and the take-over of dead
//! nodes' calls (`liveness`), the location every node follows
//! (`location`), and the wake-ups that carry every node's events to every
//! node's relay (`fanout`). On SQLite there is one node and nothing here
//! runs.

pub mod fanout;
pub mod liveness;
pub mod location;
