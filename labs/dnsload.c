/* dnsload: a light closed-loop DNS-over-UDP load generator for `cpn bench dns`.
 *
 * Built at bench time by labs/dnsload.py (gcc -O2); see that module for the rules.
 * Sends a precomputed query set (file of records: u16 big-endian length, u8 expected
 * RCODE, the query's wire octets) round-robin over SOCKETS connected UDP sockets, keeping
 * WINDOW queries in flight in total, with sendmmsg/recvmmsg batches. An answer counts as
 * answered only when its id matches a query in flight on that socket, QR is set, QDCOUNT
 * is 1, the question is echoed octet for octet (letter case included) and the RCODE is
 * the one expected for that query; anything else is counted under its own heading and
 * never as answered. A query unanswered after TIMEOUT_MS is counted lost and its slot
 * reused. Every SAMPLE_EVERY-th answered datagram is written whole to SAMPLE_FILE
 * (u32 query index, u16 length, octets) so the caller can parse a sample fully.
 * Prints one JSON line on stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define BUF 4096
#define MAXQ 512
#define MAX_SAMPLES 4096

typedef struct {
    uint8_t *wire;
    uint16_t len;
    uint16_t qend; /* offset just past the question */
    uint8_t rcode;
} query_t;

typedef struct {
    int64_t sent_ns;
    int32_t qidx; /* -1: free */
    uint16_t id;
    uint16_t gen;
} slot_t;

typedef struct {
    int fd;
    int window, bits;
    slot_t *slots;
    int *free_stack;
    int nfree;
    uint8_t (*sbuf)[MAXQ];
    uint8_t (*rbuf)[BUF];
} sock_t;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "dnsload: %s\n", what);
    exit(2);
}

static query_t *load_queries(const char *path, size_t *count) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "dnsload: cannot open query file %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t cap = 1024, n = 0;
    query_t *qs = malloc(cap * sizeof *qs);
    uint8_t head[3];
    while (fread(head, 1, 3, f) == 3) {
        uint16_t len = (uint16_t)(head[0] << 8 | head[1]);
        if (len < 17 || len > MAXQ) {
            fprintf(stderr, "dnsload: query %zu in %s has length %u (17..%d expected)\n",
                    n, path, len, MAXQ);
            exit(2);
        }
        if (n == cap) {
            cap *= 2;
            qs = realloc(qs, cap * sizeof *qs);
        }
        query_t *q = &qs[n];
        q->wire = malloc(len);
        q->len = len;
        q->rcode = head[2];
        if (fread(q->wire, 1, len, f) != len) {
            fprintf(stderr, "dnsload: query %zu in %s is truncated\n", n, path);
            exit(2);
        }
        size_t off = 12;
        while (off < len && q->wire[off] != 0) {
            if (q->wire[off] > 63) {
                fprintf(stderr, "dnsload: query %zu in %s: compressed or bad label\n", n, path);
                exit(2);
            }
            off += 1 + q->wire[off];
        }
        off += 5; /* root label + QTYPE + QCLASS */
        if (off > len) {
            fprintf(stderr, "dnsload: query %zu in %s: question runs past the end\n", n, path);
            exit(2);
        }
        q->qend = (uint16_t)off;
        n++;
    }
    fclose(f);
    if (n == 0) die("the query file holds no query");
    *count = n;
    return qs;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *port = NULL, *qpath = NULL, *spath = NULL;
    double duration = 1.0;
    int window = 100, nsock = 1, timeout_ms = 1000, sample_every = 0;
    long long count = -1;
    int opt;
    while ((opt = getopt(argc, argv, "s:p:f:d:w:c:t:n:S:e:")) != -1) {
        switch (opt) {
        case 's': host = optarg; break;
        case 'p': port = optarg; break;
        case 'f': qpath = optarg; break;
        case 'd': duration = atof(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'c': nsock = atoi(optarg); break;
        case 't': timeout_ms = atoi(optarg); break;
        case 'n': count = atoll(optarg); break;
        case 'S': spath = optarg; break;
        case 'e': sample_every = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: dnsload -p PORT -f QUERIES [-s HOST] [-d SECONDS] "
                            "[-w WINDOW] [-c SOCKETS] [-t TIMEOUT_MS] [-n COUNT] "
                            "[-S SAMPLE_FILE -e EVERY]\n");
            return 2;
        }
    }
    if (!port || !qpath) die("-p PORT and -f QUERIES are required");
    if (nsock < 1 || nsock > 1024) die("-c SOCKETS must be 1..1024");
    if (window < nsock) die("-w WINDOW must be at least -c SOCKETS");
    if (window / nsock > 4096) die("-w WINDOW / -c SOCKETS must be at most 4096");
    if (duration <= 0 || timeout_ms <= 0) die("-d and -t must be positive");
    size_t nq;
    query_t *qs = load_queries(qpath, &nq);
    FILE *sf = NULL;
    if (spath && sample_every > 0) {
        sf = fopen(spath, "wb");
        if (!sf) die("cannot create the sample file");
    }

    struct addrinfo hints = {0}, *ai;
    hints.ai_socktype = SOCK_DGRAM;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "dnsload: %s port %s: %s\n", host, port, gai_strerror(rc));
        return 2;
    }
    sock_t *socks = calloc((size_t)nsock, sizeof *socks);
    struct pollfd *pfd = calloc((size_t)nsock, sizeof *pfd);
    for (int s = 0; s < nsock; s++) {
        sock_t *k = &socks[s];
        k->window = window / nsock + (s < window % nsock ? 1 : 0);
        k->bits = 0;
        while ((1 << k->bits) < k->window) k->bits++;
        k->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (k->fd < 0 || connect(k->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            fprintf(stderr, "dnsload: socket/connect: %s\n", strerror(errno));
            return 2;
        }
        int rcv = 1 << 20;
        setsockopt(k->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
        k->slots = calloc((size_t)k->window, sizeof *k->slots);
        k->free_stack = malloc((size_t)k->window * sizeof(int));
        k->sbuf = malloc((size_t)BATCH * MAXQ);
        k->rbuf = malloc((size_t)BATCH * BUF);
        for (int i = 0; i < k->window; i++) {
            k->slots[i].qidx = -1;
            k->free_stack[k->nfree++] = k->window - 1 - i;
        }
        pfd[s].fd = k->fd;
        pfd[s].events = POLLIN;
    }
    freeaddrinfo(ai);

    struct mmsghdr smsg[BATCH], rmsg[BATCH];
    struct iovec siov[BATCH], riov[BATCH];
    long long sent = 0, answered = 0, bad_rcode = 0, bad_question = 0, bad_flags = 0,
              malformed = 0, unmatched = 0, lost = 0, send_errors = 0, samples = 0,
              send_calls = 0, recv_calls = 0;
    double lat_sum_ms = 0;
    size_t next_q = 0;
    int64_t t0 = now_ns();
    int64_t end = t0 + (int64_t)(duration * 1e9);
    int64_t timeout_ns = (int64_t)timeout_ms * 1000000LL;
    int64_t next_sweep = t0 + 10000000LL;
    int64_t now = t0;
    long long inflight = 0;

    for (;;) {
        now = now_ns();
        if (now >= end) break;
        int sending = count < 0 || sent < count;
        if (!sending && inflight == 0) break;
        /* send: a socket refills once half its window (or a whole batch) is free, so
         * every sendmmsg carries many queries */
        for (int s = 0; s < nsock && sending; s++) {
            sock_t *k = &socks[s];
            int want = k->window / 2 < BATCH ? (k->window + 1) / 2 : BATCH;
            if (k->nfree < want && k->nfree < k->window) continue;
            int n = 0;
            int taken[BATCH];
            while (n < BATCH && k->nfree > 0 && (count < 0 || sent + n < count)) {
                int slot = k->free_stack[--k->nfree];
                query_t *q = &qs[next_q];
                slot_t *sl = &k->slots[slot];
                sl->gen++;
                sl->id = (uint16_t)(((unsigned)sl->gen << k->bits) | (unsigned)slot);
                sl->qidx = (int32_t)next_q;
                sl->sent_ns = now;
                memcpy(k->sbuf[n], q->wire, q->len);
                k->sbuf[n][0] = (uint8_t)(sl->id >> 8);
                k->sbuf[n][1] = (uint8_t)(sl->id & 0xff);
                siov[n].iov_base = k->sbuf[n];
                siov[n].iov_len = q->len;
                memset(&smsg[n], 0, sizeof smsg[n]);
                smsg[n].msg_hdr.msg_iov = &siov[n];
                smsg[n].msg_hdr.msg_iovlen = 1;
                taken[n] = slot;
                next_q = next_q + 1 == nq ? 0 : next_q + 1;
                n++;
            }
            if (n == 0) continue;
            send_calls++;
            int done = sendmmsg(k->fd, smsg, (unsigned)n, 0);
            if (done < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) send_errors++;
                done = 0;
            }
            for (int i = done; i < n; i++) { /* not sent: the slot is free again */
                k->slots[taken[i]].qidx = -1;
                k->free_stack[k->nfree++] = taken[i];
            }
            sent += done;
            inflight += done;
        }
        /* receive: one poll over every socket, then drain only the readable ones */
        int wait_ms = (int)((end - now) / 1000000LL);
        if (poll(pfd, (nfds_t)nsock, wait_ms < 1 ? 0 : 1) < 0 && errno != EINTR) {
            fprintf(stderr, "dnsload: poll: %s\n", strerror(errno));
            return 2;
        }
        int late = 0;
        for (int s = 0; s < nsock && !late; s++) {
            if (!(pfd[s].revents & POLLIN)) continue;
            sock_t *k = &socks[s];
            int got = BATCH;
            while (got == BATCH) {
                for (int i = 0; i < BATCH; i++) {
                    riov[i].iov_base = k->rbuf[i];
                    riov[i].iov_len = BUF;
                    memset(&rmsg[i], 0, sizeof rmsg[i]);
                    rmsg[i].msg_hdr.msg_iov = &riov[i];
                    rmsg[i].msg_hdr.msg_iovlen = 1;
                }
                recv_calls++;
                got = recvmmsg(k->fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
                if (got <= 0) break;
                int64_t t = now_ns();
                if (t >= end) { /* arrived after the measured interval: not counted */
                    now = t;
                    late = 1;
                    break;
                }
                for (int i = 0; i < got; i++) {
                    uint8_t *b = k->rbuf[i];
                    unsigned len = rmsg[i].msg_len;
                    if (len < 12) { malformed++; continue; }
                    uint16_t id = (uint16_t)(b[0] << 8 | b[1]);
                    int slot = id & ((1 << k->bits) - 1);
                    if (slot >= k->window || k->slots[slot].qidx < 0 ||
                        k->slots[slot].id != id) {
                        unmatched++; /* late (already counted lost), duplicate or forged */
                        continue;
                    }
                    slot_t *sl = &k->slots[slot];
                    query_t *q = &qs[sl->qidx];
                    uint32_t qidx = (uint32_t)sl->qidx;
                    int64_t sent_at = sl->sent_ns;
                    sl->qidx = -1;
                    k->free_stack[k->nfree++] = slot;
                    inflight--;
                    if (!(b[2] & 0x80) || (b[2] & 0x78) != (q->wire[2] & 0x78) || b[4] != 0 ||
                        b[5] != 1) {
                        bad_flags++; /* not a response, other opcode, or QDCOUNT != 1 */
                        continue;
                    }
                    if (len < q->qend || memcmp(b + 12, q->wire + 12, q->qend - 12u) != 0) {
                        bad_question++;
                        continue;
                    }
                    if ((b[3] & 0x0f) != q->rcode) {
                        bad_rcode++;
                        continue;
                    }
                    answered++;
                    lat_sum_ms += (double)(t - sent_at) / 1e6;
                    if (sf && answered % sample_every == 0 && samples < MAX_SAMPLES) {
                        uint8_t h[6] = {(uint8_t)(qidx >> 24), (uint8_t)(qidx >> 16),
                                        (uint8_t)(qidx >> 8), (uint8_t)qidx,
                                        (uint8_t)(len >> 8), (uint8_t)len};
                        fwrite(h, 1, 6, sf);
                        fwrite(b, 1, len, sf);
                        samples++;
                    }
                }
            }
        }
        if (late) break;
        now = now_ns();
        if (now >= next_sweep) { /* unanswered for timeout_ms: lost, the slot reused */
            next_sweep = now + 10000000LL;
            for (int s = 0; s < nsock; s++) {
                sock_t *k = &socks[s];
                for (int i = 0; i < k->window; i++) {
                    if (k->slots[i].qidx >= 0 && now - k->slots[i].sent_ns > timeout_ns) {
                        k->slots[i].qidx = -1;
                        k->free_stack[k->nfree++] = i;
                        lost++;
                        inflight--;
                    }
                }
            }
        }
    }
    double elapsed = (double)(now - t0) / 1e9;
    if (sf) fclose(sf);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"sent\": %lld, \"answered\": %lld, \"bad_rcode\": %lld, \"bad_question\": %lld, "
           "\"bad_flags\": %lld, \"malformed\": %lld, \"unmatched\": %lld, \"lost\": %lld, "
           "\"in_flight_at_end\": %lld, \"send_errors\": %lld, \"samples\": %lld, "
           "\"send_calls\": %lld, \"recv_calls\": %lld, "
           "\"elapsed_s\": %.6f, \"qps\": %.1f, \"avg_latency_ms\": %.4f, "
           "\"cpu_user_s\": %.6f, \"cpu_sys_s\": %.6f}\n",
           sent, answered, bad_rcode, bad_question, bad_flags, malformed, unmatched, lost,
           inflight, send_errors, samples, send_calls, recv_calls, elapsed, elapsed > 0 ? answered / elapsed : 0.0,
           answered ? lat_sum_ms / (double)answered : 0.0,
           (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    return 0;
}
