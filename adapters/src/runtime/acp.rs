//! placeholder
use async_trait::async_trait;
use taskgate_core::runtime::{AgentRuntime, AgentSession, RuntimeError, SessionSpec};
use super::RuntimeOptions;
#[derive(Debug, Clone, Default)]
pub struct AcpRuntime { options: RuntimeOptions }
impl AcpRuntime { pub fn new(options: RuntimeOptions) -> Self { AcpRuntime { options } } }
#[async_trait]
impl AgentRuntime for AcpRuntime {
    async fn start(&self, _spec: SessionSpec) -> Result<Box<dyn AgentSession>, RuntimeError> { let _ = &self.options; Err(RuntimeError::Unsupported("todo".into())) }
}
