/* Accessors for what bindgen cannot bind: thread-local and macro values. */
#include <rte_errno.h>
#include <rte_ethdev.h>

int dpdk_sys_rte_errno(void) { return rte_errno; }

uint64_t dpdk_sys_rss_ip_tcp_udp(void) { return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP; }
