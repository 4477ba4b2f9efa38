//! Ethdev ports: discovery, configuration, start/stop, bursts, link, stats.

use super::{strerror, Burst, Mempool};
use std::ffi::{CStr, CString};

/// Symmetric Toeplitz key: a repeated 0x6d5a makes the hash of (a, b)
/// equal the hash of (b, a), so both directions of a connection land on
/// the same queue.
const SYMMETRIC_RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a,
];

/// An ethdev port id. Cheap to copy; validity is checked by DPDK calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Port(pub u16);

#[derive(Clone, Debug, Default)]
pub struct PortInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    pub hash_key_size: u8,
    pub min_mtu: u16,
    pub max_mtu: u16,
    pub tx_offload_capa: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Link {
    pub up: bool,
    pub speed_mbps: u32,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// How a port was set up.
#[derive(Clone, Debug)]
pub struct PortSetup {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rss: bool,
    /// Why RSS is off, for the log.
    pub rss_note: Option<String>,
    /// The device computes IPv4 header checksums on transmit.
    pub tx_ipv4_csum: bool,
}

/// RTE_ETH_TX_OFFLOAD_IPV4_CKSUM (RTE_BIT64(1); bindgen cannot expand it).
const TX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;

fn rc_err(what: &str, port: Port, rc: i32) -> String {
    format!("port {} ({}): {what} failed: {}", port.0, port.name(), strerror(rc))
}

impl Port {
    /// Every port the EAL probed, in id order.
    pub fn all() -> Vec<Port> {
        let mut v = Vec::new();
        // SAFETY: iterates the ethdev table (RTE_ETH_FOREACH_DEV).
        let mut p = unsafe { dpdk_sys::rte_eth_find_next_owned_by(0, 0) } as u32;
        while p < dpdk_sys::RTE_MAX_ETHPORTS {
            v.push(Port(p as u16));
            // SAFETY: as above.
            p = unsafe { dpdk_sys::rte_eth_find_next_owned_by((p + 1) as u16, 0) } as u32;
        }
        v
    }

    /// Port id of a device by its ethdev name (`net_pcap0`, `0000:03:00.1`).
    pub fn by_name(name: &str) -> Option<Port> {
        let c = CString::new(name).ok()?;
        let mut id: u16 = 0;
        // SAFETY: c is a valid C string and id a valid out pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        (rc == 0).then_some(Port(id))
    }

    pub fn is_valid(self) -> bool {
        // SAFETY: plain check on the ethdev table.
        unsafe { dpdk_sys::rte_eth_dev_is_valid_port(self.0) != 0 }
    }

    pub fn name(self) -> String {
        let mut buf = [0 as std::ffi::c_char; 64];
        // SAFETY: buf is RTE_ETH_NAME_MAX_LEN (64) bytes as the API needs.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(self.0, buf.as_mut_ptr()) };
        if rc != 0 {
            return format!("port{}", self.0);
        }
        // SAFETY: DPDK wrote a NUL-terminated name into buf.
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
    }

    pub fn info(self) -> Result<PortInfo, String> {
        let mut di = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: di is a valid out struct.
        let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(self.0, &mut di) };
        if rc != 0 {
            return Err(rc_err("dev_info_get", self, rc));
        }
        let driver = if di.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: the driver name is a static NUL-terminated string.
            unsafe { CStr::from_ptr(di.driver_name) }.to_string_lossy().into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: di.max_rx_queues,
            max_tx_queues: di.max_tx_queues,
            rss_offloads: di.flow_type_rss_offloads,
            hash_key_size: di.hash_key_size,
            min_mtu: di.min_mtu,
            max_mtu: di.max_mtu,
            tx_offload_capa: di.tx_offload_capa,
        })
    }

    /// Configures `want` rx/tx queues (clamped to what the device offers),
    /// RSS over IP/TCP/UDP with a symmetric key when available, sets up
    /// the queues on `pool` and starts the port.
    pub fn setup(self, want: u16, nb_desc: u16, pool: &Mempool, socket: i32) -> Result<PortSetup, String> {
        let info = self.info()?;
        let rxq = want.min(info.max_rx_queues).max(1);
        let txq = want.min(info.max_tx_queues).max(1);
        let mut conf = dpdk_sys::rte_eth_conf::default();
        // SAFETY: returns a constant.
        let want_hf = unsafe { dpdk_sys::dpdk_sys_rss_ip_tcp_udp() };
        let hf = info.rss_offloads & want_hf;
        let mut key = SYMMETRIC_RSS_KEY;
        let (rss, rss_note) = if rxq < 2 {
            (false, Some("single rx queue".to_string()))
        } else if hf == 0 {
            (false, Some(format!("device {} offers no IP/TCP/UDP RSS", info.driver)))
        } else {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
            if info.hash_key_size as usize == key.len() {
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
                (true, None)
            } else {
                (
                    true,
                    Some(format!(
                        "key size {} != 40: device default key, not symmetric",
                        info.hash_key_size
                    )),
                )
            }
        };
        let tx_ipv4_csum = info.tx_offload_capa & TX_OFFLOAD_IPV4_CKSUM != 0;
        if tx_ipv4_csum {
            conf.txmode.offloads |= TX_OFFLOAD_IPV4_CKSUM;
        }
        // SAFETY: conf (and the key it points to) live across the call.
        let rc = unsafe { dpdk_sys::rte_eth_dev_configure(self.0, rxq, txq, &conf) };
        if rc != 0 {
            return Err(rc_err("configure", self, rc));
        }
        let (mut nrx, mut ntx) = (nb_desc, nb_desc);
        // SAFETY: valid out pointers.
        let rc = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.0, &mut nrx, &mut ntx) };
        if rc != 0 {
            return Err(rc_err("adjust descriptors", self, rc));
        }
        for q in 0..rxq {
            // SAFETY: the pool outlives the port (teardown order in main).
            let rc = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(self.0, q, nrx, socket as u32, std::ptr::null(), pool.as_ptr())
            };
            if rc != 0 {
                let mut e = rc_err(&format!("rx queue {q} setup"), self, rc);
                if rc == -libc::ENOMEM {
                    // Some PMDs (tap, virtio) fill the ring from the pool.
                    e += &format!(
                        " ({nrx} descriptors; {} of the pool's {} mbufs were free: raise --mbufs or lower --nb-desc)",
                        pool.available().min(pool.size()),
                        pool.size()
                    );
                }
                return Err(e);
            }
        }
        for q in 0..txq {
            // SAFETY: default tx conf (NULL).
            let rc = unsafe { dpdk_sys::rte_eth_tx_queue_setup(self.0, q, ntx, socket as u32, std::ptr::null()) };
            if rc != 0 {
                return Err(rc_err(&format!("tx queue {q} setup"), self, rc));
            }
        }
        // SAFETY: configured port.
        let rc = unsafe { dpdk_sys::rte_eth_dev_start(self.0) };
        if rc != 0 {
            return Err(rc_err("start", self, rc));
        }
        // Not every virtual device supports promiscuous mode; harmless.
        // SAFETY: started port.
        unsafe { dpdk_sys::rte_eth_promiscuous_enable(self.0) };
        Ok(PortSetup {
            rx_queues: rxq,
            tx_queues: txq,
            rss,
            rss_note,
            tx_ipv4_csum,
        })
    }

    pub fn stop(self) -> Result<(), String> {
        // SAFETY: no worker polls the port any more (caller's contract).
        let rc = unsafe { dpdk_sys::rte_eth_dev_stop(self.0) };
        if rc != 0 {
            return Err(rc_err("stop", self, rc));
        }
        Ok(())
    }

    /// Closes the port, releasing its queues (and the mbufs in them).
    pub fn close(self) -> Result<(), String> {
        // SAFETY: stopped port, not polled by anyone.
        let rc = unsafe { dpdk_sys::rte_eth_dev_close(self.0) };
        if rc != 0 {
            return Err(rc_err("close", self, rc));
        }
        Ok(())
    }

    pub fn link(self) -> Link {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid out struct; nowait never blocks.
        let rc = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.0, &mut l) };
        if rc != 0 {
            return Link::default();
        }
        Link {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
        }
    }

    /// Whether the device is physically gone (a hot-removed PCI function;
    /// its driver must say so, vdevs never are): reading it then returns
    /// whatever the bus gives for absent hardware, not its counters.
    pub fn is_removed(self) -> bool {
        // SAFETY: takes a port id by value; an unknown id is answered 0.
        unsafe { dpdk_sys::rte_eth_dev_is_removed(self.0) != 0 }
    }

    /// The device's basic counters; None when the driver cannot read
    /// them, and for a device that is physically gone
    /// ([`Port::is_removed`]), so that callers keep their last reading
    /// instead of what absent hardware reads as.
    pub fn stats(self) -> Option<PortStats> {
        if self.is_removed() {
            return None;
        }
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid out struct.
        let rc = unsafe { dpdk_sys::rte_eth_stats_get(self.0, &mut s) };
        if rc != 0 {
            return None;
        }
        Some(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    pub fn mac(self) -> [u8; 6] {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid out struct.
        unsafe { dpdk_sys::rte_eth_macaddr_get(self.0, &mut a) };
        a.addr_bytes
    }

    pub fn set_mac(self, mac: [u8; 6]) -> Result<(), String> {
        let mut a = dpdk_sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: valid in struct.
        let rc = unsafe { dpdk_sys::rte_eth_dev_default_mac_addr_set(self.0, &mut a) };
        if rc != 0 {
            return Err(rc_err("set MAC", self, rc));
        }
        Ok(())
    }

    pub fn mtu(self) -> Option<u16> {
        let mut m = 0u16;
        // SAFETY: valid out pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_mtu(self.0, &mut m) };
        (rc == 0).then_some(m)
    }

    pub fn set_mtu(self, mtu: u16) -> Result<(), String> {
        // SAFETY: plain setter.
        let rc = unsafe { dpdk_sys::rte_eth_dev_set_mtu(self.0, mtu) };
        if rc != 0 {
            return Err(rc_err("set MTU", self, rc));
        }
        Ok(())
    }

    /// Receives into the free slots of `burst`; returns how many arrived.
    #[inline(always)]
    pub fn rx_burst(self, queue: u16, burst: &mut Burst) -> usize {
        let (p, spare) = burst.spare_raw();
        if spare == 0 {
            return 0;
        }
        // SAFETY: `p` has room for `spare` pointers; the port/queue pair is
        // polled by this lcore only (worker plan ownership).
        let n = unsafe { dpdk_sys::rte_eth_rx_burst(self.0, queue, p, spare) } as usize;
        // SAFETY: rx wrote `n` owned mbufs into those slots.
        unsafe { burst.commit_rx(n) };
        n
    }

    /// Transmits from the front of `burst`; what was sent leaves it, what
    /// the device refused stays (still owned).
    #[inline(always)]
    pub fn tx_burst(self, queue: u16, burst: &mut Burst) -> usize {
        let (p, n) = burst.as_raw();
        if n == 0 {
            return 0;
        }
        // SAFETY: `p` holds `n` owned mbufs; the tx queue is used by this
        // lcore only. The device takes ownership of the first `sent`.
        let sent = unsafe { dpdk_sys::rte_eth_tx_burst(self.0, queue, p, n) } as usize;
        burst.consume_front(sent);
        sent
    }
}
