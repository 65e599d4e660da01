//! Admission by count of what a client holds on to (TCP connections,
//! WebSockets, large documents waiting to be parsed): at most so many in
//! all, and so many from one client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) struct Gate {
    open: Arc<Semaphore>,
    total: usize,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_address: usize,
}

/// Why one more was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// The total is reached.
    Total,
    /// This address has its share open.
    Address,
}

impl Gate {
    pub(crate) fn new(total: usize, max_per_address: usize) -> Self {
        Self {
            open: Arc::new(Semaphore::new(total)),
            total,
            per_address: Arc::default(),
            max_per_address,
        }
    }

    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Permit, Full> {
        let mut permit = self.admit_unshared()?;
        let mut per_address = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let open = per_address.entry(ip).or_default();
        if *open >= self.max_per_address {
            return Err(Full::Address);
        }
        *open += 1;
        permit.ip = Some(ip);
        Ok(permit)
    }

    /// Counted in the total only: what a trusted proxy opens on behalf of
    /// many clients.
    pub(crate) fn admit_unshared(&self) -> Result<Permit, Full> {
        let total = self
            .open
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Total)?;
        Ok(Permit {
            _total: total,
            ip: None,
            per_address: self.per_address.clone(),
        })
    }

    /// Places free right now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.open.available_permits()
    }

    /// Waits until every permit is back.
    pub(crate) async fn all_closed(&self) {
        let _ = self.open.acquire_many(self.total as u32).await;
    }
}

/// One admitted, counted until it is dropped.
pub(crate) struct Permit {
    _total: OwnedSemaphorePermit,
    /// None: counted in the total only.
    ip: Option<IpAddr>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(ip) = self.ip else {
            return;
        };
        let mut per_address = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = per_address.get_mut(&ip) {
            *open -= 1;
            // an address with nothing open costs no memory
            if *open == 0 {
                per_address.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_at_its_cap_is_refused_while_others_are_admitted() {
        let gate = Gate::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let first = gate.admit(a).unwrap();
        let _second = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Full::Address));
        let third = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).err(), Some(Full::Total));
        drop(first);
        assert!(gate.admit(a).is_ok());
        drop(third);
        let map = gate.per_address.lock().unwrap();
        assert_eq!(map.get(&b), None, "a closed address is forgotten");
    }
}
