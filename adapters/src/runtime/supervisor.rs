//! placeholder
pub struct Supervisor;
pub struct SupervisorOptions;
pub struct SupervisedSession;
