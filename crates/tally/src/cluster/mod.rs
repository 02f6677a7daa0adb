//! Several nodes on one PostgreSQL database (issue 15; DESIGN.md "More
//! than one machine"): this node's liveness and the take-over of dead
//! nodes' calls (`liveness`), and the location every node follows
//! (`location`). On SQLite there is one node and nothing here runs.

pub mod liveness;
pub mod location;
