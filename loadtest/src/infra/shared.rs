//! Infrastructure shared by the tests of one test binary.
//!
//! The first test that asks provisions; later tests get the same containers while any test
//! still holds them; the last holder's drop removes them. A `Weak`, not a `static` that never
//! drops, so a test binary leaves no containers behind.
//!
//! Each `#[tokio::test]` runs on its own runtime, which ends with the test. Provisioning runs
//! on one long-lived runtime instead, so the Docker client's connections outlive any test.

use std::sync::{Arc, LazyLock, Weak};

use tokio::sync::Mutex;

use super::{Infra, InfraError, ProvisionOptions};

static SHARED: LazyLock<Mutex<Weak<Infra>>> = LazyLock::new(|| Mutex::new(Weak::new()));

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("shared-infra")
        .enable_all()
        .build()
        .expect("a tokio runtime for shared infrastructure")
});

/// The infrastructure of this test binary, provisioned with [`ProvisionOptions::from_env`].
pub async fn shared() -> Result<Arc<Infra>, InfraError> {
    let mut slot = SHARED.lock().await;
    if let Some(infra) = slot.upgrade() {
        return Ok(infra);
    }
    let opts = ProvisionOptions::from_env()?;
    let infra = RUNTIME
        .spawn(async move { Infra::provision(&opts).await })
        .await
        .map_err(|e| InfraError::Docker { action: "provision shared infrastructure".into(), cause: e.to_string() })??;
    let infra = Arc::new(infra);
    *slot = Arc::downgrade(&infra);
    Ok(infra)
}
