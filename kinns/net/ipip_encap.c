/* kinns-ipip-encap: the compiled data plane of kinns' user-space IP-in-IP.
 *
 * Same job and same contract as kinns/net/ipip_encap.py (read that module's
 * docstring first): run inside a node's network namespace, serve the TUN
 * device tunl0, wrap what the kernel routes into it in an outer IPv4 header
 * with protocol 4 addressed to the node that owns the destination (taken
 * from tunl0's own routes, `<podCIDR> via <node IP> dev tunl0 onlink`),
 * and unwrap what other nodes send.  Python stays under 1 Gbit/s (one
 * packet per syscall and a few microseconds of interpreter per packet), so
 * this helper does the per-packet work and batches the syscalls:
 *
 *  - tunl0 is opened with a virtio-net header and TSO offered
 *    (TUNSETOFFLOAD), so a pod's TCP hands over 64 KiB segments in one
 *    read; they are cut here into MSS-sized segments with real checksums,
 *    exactly what the wire would carry, and sent with one sendmmsg;
 *  - the raw IPPROTO_IPIP socket is drained with recvmmsg, 64 at a time,
 *    and runs of one TCP flow's segments go back into tunl0 as one GSO
 *    packet (user-space GRO);
 *  - after traffic each thread keeps polling for 50 us before it sleeps:
 *    a wake-up per hop would otherwise cost more than VXLAN's whole RTT.
 *
 * Usage: kinns-ipip-encap [COUNTERS_FILE]   (counters every 5 s, JSON)
 * Exits non-zero on an unexpected error; its supervisor restarts it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define BATCH 64
#define NICE -10
#ifndef BURST_GAP_NS
#define BURST_GAP_NS 50000      /* how long to wait for the rest of a TCP burst */
#endif
#ifndef SPIN_NS
#define SPIN_NS 50000           /* how long a thread stays awake after traffic */
#endif
#define MAXROUTES 1024

struct route { uint32_t net, mask, gw; };          /* host byte order net/mask, network order gw */
struct table { int n; struct route r[MAXROUTES]; };

static _Atomic(struct table *) routes;
static atomic_ulong c_out, c_in, c_out_drop, c_in_drop, c_tun_reads, c_tun_writes;
static int tun_fd, raw_fd, tun_index;

static void die(const char *what) { perror(what); exit(1); }

static uint32_t lookup(uint32_t dst_be) {
    struct table *t = atomic_load(&routes);
    uint32_t d = ntohl(dst_be);
    for (int i = 0; i < t->n; i++)
        if ((d & t->r[i].mask) == t->r[i].net) return t->r[i].gw;
    return 0;
}

/* ---- routes: a dump of tunl0's routes, again after every route change ---- */

static struct table *dump_routes(int nl) {
    struct { struct nlmsghdr h; struct rtmsg r; } req = {
        .h = { .nlmsg_len = sizeof req, .nlmsg_type = RTM_GETROUTE, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
               .nlmsg_seq = 1 },
        .r = { .rtm_family = AF_INET } };
    if (send(nl, &req, sizeof req, 0) < 0) die("route dump");
    struct table *t = calloc(1, sizeof *t);
    static char buf[1 << 16];
    for (;;) {
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        if (n < 0) { if (errno == EINTR) continue; die("route dump recv"); }
        for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) goto done;
            if (h->nlmsg_type != RTM_NEWROUTE) continue;
            struct rtmsg *rt = NLMSG_DATA(h);
            if (rt->rtm_table != RT_TABLE_MAIN) continue;
            uint32_t dst = 0, gw = 0; int oif = 0;
            int len = RTM_PAYLOAD(h);
            for (struct rtattr *a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                if (a->rta_type == RTA_DST) memcpy(&dst, RTA_DATA(a), 4);
                else if (a->rta_type == RTA_GATEWAY) memcpy(&gw, RTA_DATA(a), 4);
                else if (a->rta_type == RTA_OIF) memcpy(&oif, RTA_DATA(a), 4);
            }
            if (oif != tun_index || !gw || t->n == MAXROUTES) continue;
            uint32_t mask = rt->rtm_dst_len ? ~0u << (32 - rt->rtm_dst_len) : 0;
            int i = t->n++;          /* keep longest prefix first */
            while (i > 0 && t->r[i - 1].mask < mask) { t->r[i] = t->r[i - 1]; i--; }
            t->r[i] = (struct route){ ntohl(dst) & mask, mask, gw };
        }
    }
done:
    return t;
}

static void *watch_routes(void *arg) {
    (void)arg;
    int mon = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_IPV4_ROUTE };
    if (mon < 0 || bind(mon, (void *)&sa, sizeof sa) < 0) die("route monitor");
    int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (nl < 0) die("netlink");
    static char buf[1 << 16];
    for (;;) {
        while (recv(mon, buf, sizeof buf, MSG_DONTWAIT) > 0) {}   /* changes the next dump sees */
        struct table *old = atomic_exchange(&routes, dump_routes(nl));
        if (recv(mon, buf, sizeof buf, MSG_PEEK) < 0 && errno != EINTR) die("route monitor recv");
        usleep(20000);           /* readers of `old` finished long before this: free it */
        free(old);
    }
    return NULL;
}

/* ---- waiting: spin a little, then sleep ----
 * Each hop through a sleeping thread costs a wake-up (15-20 us on a busy
 * 2-vCPU VM: four per round trip, five times VXLAN's whole RTT).  After
 * traffic a thread keeps polling its descriptor for SPIN_NS, yielding the
 * CPU between tries, so a request's answer usually finds it awake. */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Nothing to do: 0 while still spinning (try again), 1 after sleeping until `pfd` is readable. */
static int idle(struct pollfd *pfd, uint64_t active) {
    if (now_ns() - active < (uint64_t)SPIN_NS) {
        sched_yield();
        return 0;
    }
    if (poll(pfd, 1, -1) < 0 && errno != EINTR) die("poll");
    return 1;
}

/* ---- checksums and TCP segmentation ---- */

/* One's-complement sum of `n` bytes as big-endian 16-bit words, added to `s`
 * (folded to 32 bits).  Summed 32 bits at a time into 64 (RFC 1071's trick). */
static uint32_t sum16(const void *p, size_t n, uint32_t s) {
    const uint8_t *b = p;
    uint64_t acc = 0;
    for (; n >= 4; n -= 4, b += 4) { uint32_t w; memcpy(&w, b, 4); acc += ntohl(w); }
    if (n >= 2) { acc += (uint32_t)b[0] << 8 | b[1]; b += 2; n -= 2; }
    if (n) acc += (uint32_t)b[0] << 8;
    acc += s;
    while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
    return (uint32_t)((acc & 0xffff) + (acc >> 16)) ;
}

static uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return htons((uint16_t)~s);
}

static void ip_checksum(uint8_t *ip) {
    int ihl = (ip[0] & 15) * 4;
    ip[10] = ip[11] = 0;
    uint16_t c = fold(sum16(ip, ihl, 0));
    memcpy(ip + 10, &c, 2);
}

/* L4 checksum of `l4` (len bytes) under IPv4 header `ip`, stored at l4+off. */
static void l4_checksum(const uint8_t *ip, uint8_t *l4, const uint8_t *payload, size_t hlen, size_t plen,
                        int off) {
    l4[off] = l4[off + 1] = 0;
    uint32_t s = sum16(ip + 12, 8, 0) + ip[9] + (uint32_t)(hlen + plen);
    s = sum16(payload, plen, sum16(l4, hlen, s));       /* hlen is even: TCP headers are 4-byte words */
    uint16_t c = fold(s);
    if (ip[9] == IPPROTO_UDP && c == 0) c = 0xffff;
    memcpy(l4 + off, &c, 2);
}

#define SLOT 2048            /* one wire packet's inner part: up to the 1480-byte MTU, with room */
/* A batch of packets to send.  Each is copied into its own slot: the read
 * buffer is reused by the next read before the batch goes out. */
struct out { struct mmsghdr m[BATCH]; struct iovec iov[BATCH]; struct sockaddr_in to[BATCH];
             uint8_t pkt[BATCH][SLOT]; int n; };

static void flush(struct out *o) {
    int sent = 0;
    while (sent < o->n) {
        int r = sendmmsg(raw_fd, o->m + sent, o->n - sent, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS || errno == EHOSTUNREACH || errno == ENETUNREACH || errno == EMSGSIZE ||
                errno == ECONNREFUSED || errno == EPERM) { atomic_fetch_add(&c_out_drop, 1); sent++; continue; }
            die("sendmmsg");
        }
        sent += r;
    }
    atomic_fetch_add(&c_out, sent);
    o->n = 0;
}

static void queue(struct out *o, uint32_t gw, const uint8_t *hdr, size_t hlen, const uint8_t *payload,
                  size_t plen) {
    if (hlen + plen > SLOT) { atomic_fetch_add(&c_out_drop, 1); return; }
    int i = o->n;
    memcpy(o->pkt[i], hdr, hlen);
    memcpy(o->pkt[i] + hlen, payload, plen);
    o->iov[i] = (struct iovec){ o->pkt[i], hlen + plen };
    o->to[i] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = gw };
    o->m[i].msg_hdr = (struct msghdr){ .msg_name = &o->to[i], .msg_namelen = sizeof o->to[i],
                                       .msg_iov = &o->iov[i], .msg_iovlen = 1 };
    if (++o->n == BATCH) flush(o);
}

/* One packet read from tunl0 (after its virtio-net header): queue its wire segments. */
static void encapsulate(struct out *o, struct virtio_net_hdr *vh, uint8_t *p, size_t n) {
    if (n < 20 || (p[0] >> 4) != 4) return;
    uint32_t dst; memcpy(&dst, p + 16, 4);
    uint32_t gw = lookup(dst);
    if (!gw) { atomic_fetch_add(&c_out_drop, 1); return; }
    int ihl = (p[0] & 15) * 4;
    int gso = vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
    if (gso == VIRTIO_NET_HDR_GSO_TCPV4 && p[9] == IPPROTO_TCP && n > (size_t)ihl + 20) {
        int thl = (p[ihl + 12] >> 4) * 4, hlen = ihl + thl;
        size_t mss = vh->gso_size, left = n - hlen;
        if (hlen > 120 || mss == 0) return;
        if (o->n && o->n + (left + mss - 1) / mss > BATCH) flush(o);
        uint8_t h[128]; memcpy(h, p, hlen);
        uint32_t seq; memcpy(&seq, h + ihl + 4, 4); seq = ntohl(seq);
        uint16_t id = (uint16_t)(p[4] << 8 | p[5]);
        uint8_t flags = h[ihl + 13];
        for (size_t off = 0; left > 0; off += mss, id++) {
            size_t len = left < mss ? left : mss;
            left -= len;
            uint16_t tot = htons((uint16_t)(hlen + len)), idn = htons(id);
            memcpy(h + 2, &tot, 2); memcpy(h + 4, &idn, 2);
            uint32_t s = htonl(seq + (uint32_t)off); memcpy(h + ihl + 4, &s, 4);
            h[ihl + 13] = flags & (uint8_t)(left ? ~0x09 : 0xff);        /* FIN, PSH on the last only */
            if (off) h[ihl + 13] &= (uint8_t)~0x80;                       /* CWR on the first only */
            ip_checksum(h);
            l4_checksum(h, h + ihl, p + hlen + off, thl, len, 16);
            queue(o, gw, h, hlen, p + hlen + off, len);
        }
        return;
    }
    if (vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        size_t cs = vh->csum_start, co = vh->csum_offset;
        if (cs + co + 2 > n) return;
        p[cs + co] = p[cs + co + 1] = 0;
        uint16_t c = fold(sum16(p + cs, n - cs, sum16(p + 12, 8, 0) + p[9] + (uint32_t)(n - cs)));
        if (p[9] == IPPROTO_UDP && c == 0) c = 0xffff;
        memcpy(p + cs + co, &c, 2);
    }
    queue(o, gw, p, n, p + n, 0);
}

static void *outbound(void *arg) {
    (void)arg;
    static uint8_t buf[sizeof(struct virtio_net_hdr) + 65536];
    static struct out o;
    struct pollfd pfd = { .fd = tun_fd, .events = POLLIN };
    uint64_t active = now_ns();
    for (;;) {                    /* tun_fd is non-blocking: read while packets wait, then send the batch */
        ssize_t n = read(tun_fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) die("read tunl0");
            if (o.n) { flush(&o); active = now_ns(); }
            if (!idle(&pfd, active)) continue;
            active = now_ns();
            continue;
        }
        atomic_fetch_add(&c_tun_reads, 1);
        if ((size_t)n > sizeof(struct virtio_net_hdr))
            encapsulate(&o, (void *)buf, buf + sizeof(struct virtio_net_hdr), n - sizeof(struct virtio_net_hdr));
        if (o.n) { flush(&o); active = now_ns(); }    /* a TSO read is a batch already; a lone packet must not wait */
    }
    return NULL;
}

/* ---- receive-side coalescing (what GRO does in the kernel) ----
 * Consecutive full-size segments of one TCP flow in a received batch are
 * written to tunl0 as one packet with a virtio-net GSO header, so the
 * pod's stack handles one 64 KiB segment instead of 45 small ones (the
 * wire keeps its 1480-byte packets; this only changes how they are handed
 * to the kernel on this side). */

struct seg { uint8_t *ip; size_t len; int hl, thl; size_t plen; uint32_t seq; };

static int parse_tcp(uint8_t *ip, size_t len, struct seg *g) {
    g->ip = ip; g->len = len; g->hl = (ip[0] & 15) * 4;
    if (g->hl != 20 || ip[9] != IPPROTO_TCP || (ip[6] & 0x3f) || ip[7] || len < 40) return 0;
    if ((size_t)(ip[2] << 8 | ip[3]) != len) return 0;
    g->thl = (ip[32] >> 4) * 4;
    if (g->thl < 20 || len < (size_t)(20 + g->thl)) return 0;
    g->plen = len - 20 - g->thl;
    memcpy(&g->seq, ip + 24, 4); g->seq = ntohl(g->seq);
    return g->plen > 0;
}

/* May `q` follow `last` in a coalesced packet that starts with `first`? */
static int follows(const struct seg *first, const struct seg *last, const struct seg *q, size_t total) {
    const uint8_t *a = first->ip, *b = q->ip;
    if (q->thl != first->thl || last->plen != first->plen || q->plen > first->plen) return 0;
    if (total + q->plen > 65535 - 20 - 60) return 0;
    if (a[1] != b[1] || memcmp(a + 12, b + 12, 8) || memcmp(a + 20, b + 20, 4)) return 0;   /* tos, addrs, ports */
    if (last->ip[33] != 0x10 || (b[33] & ~0x08) != 0x10) return 0;                          /* ACK, PSH only last */
    if (memcmp(a + 28, b + 28, 4) || memcmp(a + 34, b + 34, 2)) return 0;                    /* ack, window */
    if (memcmp(a + 40, b + 40, first->thl - 20)) return 0;                                    /* options */
    return q->seq == last->seq + (uint32_t)last->plen;
}

/* A full TCP data segment without PSH/FIN/SYN/RST: more of its burst is on the way. */
static int mid_burst(const uint8_t *p, size_t len) {
    int hl = (p[0] & 15) * 4;
    if (len < (size_t)hl + 40 || p[hl + 9] != IPPROTO_TCP) return 0;
    const uint8_t *in = p + hl;
    int ihl = (in[0] & 15) * 4, thl = (in[ihl + 12] >> 4) * 4;
    return in[ihl + 13] == 0x10 && len > (size_t)(hl + ihl + thl) + 512;
}

static void write_tun(struct iovec *w, int n) {
    atomic_fetch_add(&c_tun_writes, 1);
    if (writev(tun_fd, w, n) < 0) {
        if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN || errno == EINVAL) {
            atomic_fetch_add(&c_in_drop, 1);     /* EINVAL: not an IP packet inside */
            return;
        }
        die("write tunl0");
    }
}

static void emit(struct seg *g, int n) {
    static struct virtio_net_hdr plain;
    struct iovec w[BATCH + 2];
    if (n == 1) {
        w[0] = (struct iovec){ &plain, sizeof plain };
        w[1] = (struct iovec){ g[0].ip, g[0].len };
        write_tun(w, 2);
        return;
    }
    uint8_t h[80];
    int hlen = 20 + g[0].thl;
    size_t total = hlen;
    for (int i = 0; i < n; i++) total += g[i].plen;
    memcpy(h, g[0].ip, hlen);
    h[2] = (uint8_t)(total >> 8); h[3] = (uint8_t)total;
    h[33] = g[n - 1].ip[33];
    ip_checksum(h);
    uint32_t ps = sum16(h + 12, 8, 0) + IPPROTO_TCP + (uint32_t)(total - 20);
    while (ps >> 16) ps = (ps & 0xffff) + (ps >> 16);
    h[36] = (uint8_t)(ps >> 8); h[37] = (uint8_t)ps;          /* partial: the pseudo-header's sum */
    struct virtio_net_hdr vh = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
                                 .hdr_len = (uint16_t)hlen, .gso_size = (uint16_t)g[0].plen, .csum_start = 20,
                                 .csum_offset = 16 };
    w[0] = (struct iovec){ &vh, sizeof vh };
    w[1] = (struct iovec){ h, hlen };
    for (int i = 0; i < n; i++) w[2 + i] = (struct iovec){ g[i].ip + hlen, g[i].plen };
    write_tun(w, n + 2);
}

static void *inbound(void *arg) {
    (void)arg;
    static uint8_t bufs[BATCH][SLOT];
    static struct mmsghdr m[BATCH];
    static struct iovec iov[BATCH];
    static struct seg run[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i] = (struct iovec){ bufs[i], sizeof bufs[i] };
        m[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
    }
    struct pollfd pfd = { .fd = raw_fd, .events = POLLIN };
    uint64_t active = now_ns();
    for (;;) {
        int n = recvmmsg(raw_fd, m, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) die("recvmmsg");
            if (idle(&pfd, active)) active = now_ns();
            continue;
        }
        /* In the middle of a TCP burst the rest is microseconds behind: wait for it
         * briefly (the kernel's gro_flush_timeout), so it can be coalesced. */
        uint64_t until = now_ns() + BURST_GAP_NS;
        while (n < BATCH && mid_burst(bufs[n - 1], m[n - 1].msg_len) && now_ns() < until) {
            int k = recvmmsg(raw_fd, m + n, BATCH - n, MSG_DONTWAIT, NULL);
            if (k > 0) n += k;
            else sched_yield();
        }
        active = now_ns();
        struct table *t = atomic_load(&routes);
        int nrun = 0;
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            uint8_t *p = bufs[i];
            size_t len = m[i].msg_len;
            int hl = (p[0] & 15) * 4;
            uint32_t src; memcpy(&src, p + 12, 4);
            int known = 0;
            for (int k = 0; k < t->n && !known; k++) known = t->r[k].gw == src;
            if (!known || len <= (size_t)hl + 20 || (m[i].msg_hdr.msg_flags & MSG_TRUNC)) {
                atomic_fetch_add(&c_in_drop, 1);
                continue;
            }
            struct seg g;
            if (!parse_tcp(p + hl, len - hl, &g)) {          /* not coalescable: in order, on its own */
                if (nrun) { emit(run, nrun); nrun = 0; }
                g = (struct seg){ .ip = p + hl, .len = len - hl };
                emit(&g, 1);
                continue;
            }
            if (nrun && !follows(&run[0], &run[nrun - 1], &g, total)) { emit(run, nrun); nrun = 0; }
            if (!nrun) total = 0;
            run[nrun++] = g;
            total += g.plen;
        }
        if (nrun) emit(run, nrun);
        atomic_fetch_add(&c_in, n);
    }
    return NULL;
}

int main(int argc, char **argv) {
    /* It does what softirqs do for the kernel's ipip, which run ahead of
     * every process: on a busy machine a plainly scheduled data plane adds
     * a time slice of delay per batch.  Threads inherit this. */
    if (setpriority(PRIO_PROCESS, 0, NICE) < 0) perror("setpriority (running at normal priority)");
    tun_fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tun_fd < 0) die("/dev/net/tun");
    struct ifreq ifr = { 0 };
    strncpy(ifr.ifr_name, "tunl0", IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR;
    if (ioctl(tun_fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF tunl0");
    if (ioctl(tun_fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0) die("TUNSETOFFLOAD");
    if (fcntl(tun_fd, F_SETFL, O_NONBLOCK) < 0) die("O_NONBLOCK");
    raw_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_IPIP);
    if (raw_fd < 0) die("raw socket");
    if (ioctl(raw_fd, SIOCGIFINDEX, &ifr) < 0) die("SIOCGIFINDEX tunl0");
    tun_index = ifr.ifr_ifindex;
    int big = 4 << 20;
    setsockopt(raw_fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    setsockopt(raw_fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (nl < 0) die("netlink");
    atomic_store(&routes, dump_routes(nl));
    close(nl);
    pthread_t t;
    if (pthread_create(&t, NULL, watch_routes, NULL) || pthread_create(&t, NULL, outbound, NULL) ||
        pthread_create(&t, NULL, inbound, NULL)) die("pthread_create");
    fprintf(stderr, "kinns-ipip-encap: tunl0 is a TUN device (TSO segmented here), protocol 4 over a raw socket\n");
    for (;;) {
        sleep(5);
        if (argc > 1) {
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
            FILE *f = fopen(tmp, "w");
            if (!f) continue;
            fprintf(f, "{\"out\": %lu, \"in\": %lu, \"out_dropped\": %lu, \"in_dropped\": %lu, "
                    "\"tun_reads\": %lu, \"tun_writes\": %lu, \"peers\": %d}\n",
                    atomic_load(&c_out), atomic_load(&c_in), atomic_load(&c_out_drop), atomic_load(&c_in_drop),
                    atomic_load(&c_tun_reads), atomic_load(&c_tun_writes), atomic_load(&routes)->n);
            fclose(f);
            rename(tmp, argv[1]);
        }
    }
}
