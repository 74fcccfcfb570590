/* The native matching core: new orders and cancels on state that is C, not Python objects.
 *
 * core.py's ReferenceCore stays the specification; native.py's NativeCore wraps this. The state here is the part
 * of ReferenceCore's state that new orders and cancels touch: products with their two book sides, members' cash,
 * warehouse receipts, live orders and the idempotency memory, plus the counters. It is loaded from and dumped to
 * the canonical picture (ReferenceCore.to_state), so a snapshot, the state hash and every command this file does
 * not run (amendments, operator commands, sessions and the opening auction) stay core.py's own code: native.py
 * dumps, lets the reference run the command, and loads again.
 *
 * Layout:
 *  - strings (member, product and receipt ids) are interned once into an arena, with an open-addressing hash
 *    from bytes to string id, and per-id arrays giving the member, product or receipt slot;
 *  - a book side is a sorted array of price levels (best at the end, so taking the best level is a pop), each
 *    level an intrusive FIFO list of orders in a slab pool;
 *  - orders by id through a direct table (order ids are sequence numbers, dense);
 *  - the idempotency memory is an open-addressing hash of (member string id, key bytes) -> acknowledgement entry;
 *  - cash is __int128 fen. load() accepts a state only if no value can overflow before the next load: every
 *    fill's notional (price × lots × units per lot, at any price the book holds or the band allows) below 2^92,
 *    all cash ever deposited below 2^120, an order's cumulative notional below 2^100 (a fill adds < 2^92, and only
 *    amendments, which run in Python and reload, let an order trade more than its lots), so notional × fee rate
 *    stays below 2^121. Anything outside those bounds stays with the reference.
 *
 * run(commands, blob) takes a packed batch (native.py's pack()): 64-byte records of eight little-endian int64,
 * strings as (offset << 24 | length) into blob. It returns 64-byte result records (one per command) and 64-byte
 * event records; native.py turns them into Ack, Outcome and event objects only when asked.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

typedef __int128 i128;
typedef unsigned __int128 uint128_t;
typedef int64_t i64;

/* ---------------------------------------------------------------- codes shared with native.py */

enum { K_NEW = 1, K_CANCEL = 2 };
enum { SIDE_B = 1, SIDE_S = 2 };
enum { TY_LIMIT = 1, TY_MARKET = 2 };
enum { TIF_DAY = 1, TIF_GTC = 2, TIF_IOC = 3, TIF_FOK = 4 };
enum { PH_CLOSED = 0, PH_AUCTION = 1, PH_AUCTION_DONE = 2, PH_CONTINUOUS = 3, PH_BREAK = 4 };
enum { ST_DONE = 1, ST_RESTING, ST_FILLED, ST_CANCELLED, ST_KILLED, ST_AMENDED, ST_REJECTED };
enum { RS_LIVE = 0, RS_SPLIT = 1, RS_OUT = 2 };
/* Refusal reasons, in native.py's REASONS order (index 0: none). */
enum {
    R_NONE, R_INVALID_KEY, R_INVALID_TIME, R_UNKNOWN_MEMBER, R_UNKNOWN_PRODUCT, R_MEMBER_SUSPENDED,
    R_PRODUCT_SUSPENDED, R_MARKET_ORDER_TIF, R_TIF_NOT_ALLOWED_IN_AUCTION, R_MARKET_CLOSED,
    R_NON_POSITIVE_QUANTITY, R_QUANTITY_ABOVE_MAXIMUM, R_NON_POSITIVE_PRICE, R_OFF_TICK_PRICE,
    R_NO_REFERENCE_PRICE, R_PRICE_OUTSIDE_BAND, R_NO_RECEIPTS_FOR_BUY, R_INSUFFICIENT_CASH,
    R_INSUFFICIENT_RECEIPTS, R_UNKNOWN_RECEIPT, R_RECEIPT_NOT_OWNED, R_RECEIPT_WRONG_PRODUCT,
    R_RECEIPT_ENCUMBERED, R_RECEIPT_LISTED_TWICE, R_UNKNOWN_ORDER, R_NOT_YOUR_ORDER
};
/* Cancel reasons of OrderCancelled. */
enum { CR_CLIENT = 1, CR_SELF_TRADE, CR_IOC_REMAINDER, CR_MARKET_REMAINDER, CR_FOK_UNFILLED };
/* Event records (EV_ACCEPTED is never written; the number stays reserved). */
enum { EV_ACCEPTED = 1, EV_CANCELLED, EV_TRADE, EV_SETTLE, EV_DELIVERY, EV_SPLIT };

#define STR_REF(off, len) (((i64)(off) << 24) | (i64)(len))
#define MAX_KEY_CHARS 128
#define FLAG_RECEIPTS_NOT_LIST 0x100000000LL /* in word 0 of a new order: receipt_ids was neither tuple nor list */

/* ---------------------------------------------------------------- state */

typedef struct { uint32_t off, len; uint64_t hash; } Str; /* len | STR_UNHASHED: not in the string hash */
#define STR_UNHASHED 0x80000000u
#define STR_LEN(e) ((e)->len & ~STR_UNHASHED)

typedef struct {
    int32_t str;
    uint8_t suspended;
    i128 available, locked;
} Member;

typedef struct {
    i64 price, open_lots;
    int32_t count, head, tail, next_free;
} Level;

typedef struct {
    int32_t *lv;   /* level slots, sorted so that the best level is last */
    i64 *key;      /* their sort keys: price for bids, -price for asks (ascending) */
    int32_t n, cap;
} Side;

typedef struct {
    int32_t str;
    i64 tick, units, max_lots, band_ppm, bfee_lot, bfee_rate, sfee_lot, sfee_rate, settlement, band_low, band_high;
    uint8_t suspended, phase;
    Side side[2]; /* 0 bids, 1 asks */
} Product;

typedef struct {
    int32_t str, product, owner, parent, next; /* parent: string id or -1 for "" ; next: in its order's list */
    int32_t first_child;                       /* slot of the delivered child of its split (the remainder is next) */
    uint8_t status;
    i64 weight, lots, encumbered, children;
    i64 nth; /* a split's child: the n of its id "<parent>.<n>" */
} Receipt;

typedef struct {
    i64 order_id, price, open_lots, filled_lots, priority, at_us;
    i128 locked, filled_notional, consumed, fees;
    uint32_t key_off, key_len;
    int32_t member, product, level, prev, next, rhead, rtail;
    uint8_t side, type, tif, live;
} Order;

typedef struct { /* 48 bytes: one per accepted command, so kept small */
    int32_t member_str; /* the ack's member id, interned */
    uint32_t key_off;
    uint16_t key_len;
    uint8_t status;
    uint32_t ntrades;
    i64 sequence, order_id, filled, first_trade;
} AckEnt;

typedef struct {
    char *p;
    size_t len, cap;
    PyObject *owner; /* a bytearray holding p, or NULL for memory of our own */
} Bytes;

typedef struct {
    int32_t id;
    uint32_t tag;
} Slot;

typedef struct {
    PyObject_HEAD
    int loaded;
    /* strings */
    Bytes sarena;
    Str *strs;
    int32_t nstrs, strs_cap;
    int32_t *shash;
    uint32_t shash_cap;
    int32_t *mem_of, *prod_of, *rcpt_of;
    /* entities */
    Member *members;
    int32_t nmembers, members_cap;
    Product *products;
    int32_t nproducts, products_cap;
    Receipt *receipts;
    int32_t nreceipts, receipts_cap;
    Order *orders;
    int32_t norders_cap, order_free, norders_used;
    int32_t *oid; /* order id -> order slot or -1 */
    i64 oid_cap;
    Level *levels;
    int32_t levels_cap, level_free, nlevels_used;
    /* idempotency memory */
    Bytes karena;
    AckEnt *acks;
    int32_t nacks, acks_cap;
    Slot *ahash; /* entry index and the upper half of its hash */
    uint32_t ahash_cap;
    /* Split receipts' ids are written to the string arena but not entered in the string hash (each would be a
     * random probe into a large table); find_receipt() reaches them through their parent. Only when the loaded
     * state has a receipt id that looks like a child's id but is not ("<x>.<n>" whose parent is not x), which a
     * new child could overwrite as the reference's dict would, are they hashed like every other string. */
    int hash_children;
    int lazy_children; /* some child id is not in the string hash */
    /* counters */
    i64 sequence, trade_count;
    i128 centre_fees, deposited, withdrawn, grams_registered, grams_out;
    /* outputs of the current run (bytearrays handed to the caller) */
    Bytes results, events;
    /* the current run's blob references already looked up (members, products) */
    struct {
        i64 ref;
        int32_t id;
    } refcache[1024];
} Core;

/* ---------------------------------------------------------------- memory
 * The growing tables (strings, receipts, orders, the idempotency memory) are allocated here: from 1 MiB up as
 * their own mappings, grown with mremap, which moves pages instead of copying them, and kept for reuse when
 * freed (see SPARE); below that through PyMem. A 16-byte header before each block remembers its size. */

#define BIG_MAPPED (1u << 20)
typedef struct {
    size_t size;   /* bytes in use after the header */
    size_t mapped; /* length of the mapping holding it, 0 for a PyMem block */
} BigHead;

#ifdef MREMAP_MAYMOVE
/* Mappings given back by big_free, kept for the next table of the process instead of being unmapped: a new
 * core (a reload after a reference command, a snapshot restore, a bench pass) then writes into pages that are
 * already there rather than faulting in and zeroing fresh ones. Bounded; the rest goes back to the kernel. */
#define SPARE_SLOTS 32
#define SPARE_BYTES ((size_t)512 << 20)
static struct {
    void *block;
    size_t length;
} SPARE[SPARE_SLOTS];
static int spare_count;
static size_t spare_bytes;

static void *take_spare(size_t total, size_t *length)
{
    int best = -1;
    for (int i = 0; i < spare_count; i++)
        if (SPARE[i].length >= total && (best < 0 || SPARE[i].length < SPARE[best].length))
            best = i;
    if (best < 0 || SPARE[best].length > total * 4) /* none, or only one far too large to tie up */
        return NULL;
    void *block = SPARE[best].block;
    *length = SPARE[best].length;
    spare_bytes -= SPARE[best].length;
    SPARE[best] = SPARE[--spare_count];
    return block;
}
#endif

static void *big_realloc(void *ptr, size_t size)
{
    size_t total = size + sizeof(BigHead);
    BigHead *head = ptr ? (BigHead *)ptr - 1 : NULL;
#ifdef MREMAP_MAYMOVE
    if (head && head->mapped) {
        if (total > head->mapped) { /* moves the pages, never copies them */
            void *block = mremap(head, head->mapped, total, MREMAP_MAYMOVE);
            if (block == MAP_FAILED) {
                PyErr_NoMemory();
                return NULL;
            }
#ifdef MADV_HUGEPAGE
            (void)madvise(block, total, MADV_HUGEPAGE);
#endif
            head = block;
            head->mapped = total;
        }
        head->size = size;
        return head + 1;
    }
    if (total >= BIG_MAPPED) {
        size_t length = total;
        BigHead *block = take_spare(total, &length);
        if (!block) {
            block = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (block == MAP_FAILED) {
                PyErr_NoMemory();
                return NULL;
            }
#ifdef MADV_HUGEPAGE
            /* Large tables, probed at random: huge pages, where the kernel allows them, save TLB misses and faults. */
            (void)madvise(block, total, MADV_HUGEPAGE);
#endif
        }
        if (head) {
            memcpy(block + 1, ptr, head->size < size ? head->size : size);
            PyMem_Free(head);
        }
        block->size = size;
        block->mapped = length;
        return block + 1;
    }
#endif
    head = PyMem_Realloc(head, total);
    if (!head) {
        PyErr_NoMemory();
        return NULL;
    }
    head->size = size;
    head->mapped = 0;
    return head + 1;
}

static void big_free(void *ptr)
{
    if (!ptr)
        return;
    BigHead *head = (BigHead *)ptr - 1;
#ifdef MREMAP_MAYMOVE
    if (head->mapped) {
        if (spare_count < SPARE_SLOTS && spare_bytes + head->mapped <= SPARE_BYTES) {
            SPARE[spare_count].block = head;
            SPARE[spare_count].length = head->mapped;
            spare_count++;
            spare_bytes += head->mapped;
        } else {
            munmap(head, head->mapped);
        }
        return;
    }
#endif
    PyMem_Free(head);
}

/* ---------------------------------------------------------------- small helpers */

static int grow(void **ptr, int32_t *cap, int32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    int32_t next = *cap ? *cap : 16;
    while (next < need)
        next *= 2;
    void *p = big_realloc(*ptr, (size_t)next * size);
    if (!p)
        return -1;
    *ptr = p;
    *cap = next;
    return 0;
}

static int bytes_reserve(Bytes *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t next = b->cap ? b->cap : 4096;
    while (next < b->len + extra)
        next *= 2;
    if (b->owner) {
        if (PyByteArray_Resize(b->owner, (Py_ssize_t)next) < 0)
            return -1;
        b->p = PyByteArray_AS_STRING(b->owner);
        b->cap = next;
        return 0;
    }
    char *p = big_realloc(b->p, next);
    if (!p)
        return -1;
    b->p = p;
    b->cap = next;
    return 0;
}

/* Eight bytes at a time, mixed by multiplication (splitmix64's constants). */
static inline uint64_t hash_bytes(const char *s, size_t n, uint64_t h)
{
    h ^= (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    uint64_t w;
    if (n >= 8) {
        const char *last = s + n - 8;
        while (s < last) {
            memcpy(&w, s, 8);
            h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
            h ^= h >> 31;
            s += 8;
        }
        memcpy(&w, last, 8); /* the last eight bytes, overlapping what came before */
    } else if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        w = (uint64_t)lo | ((uint64_t)hi << 32);
    } else if (n) {
        w = (uint64_t)(unsigned char)s[0] | ((uint64_t)(unsigned char)s[n >> 1] << 8) |
            ((uint64_t)(unsigned char)s[n - 1] << 16);
    } else {
        w = 0;
    }
    h = (h ^ w) * 0x94D049BB133111EBULL;
    h ^= h >> 29;
    h = (h ^ (h >> 32)) * 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 29);
}

/* ceil(v / 1e6) for 0 <= v: 64-bit division (a multiplication) whenever v fits, which is nearly always. */
static inline i128 ceil_million(i128 v)
{
    v += 999999;
    if (v >= 0 && v <= (i128)UINT64_MAX)
        return (i128)((uint64_t)v / 1000000u);
    return v / 1000000;
}
#define HASH_SEED 14695981039346656037ULL

/* ---------------------------------------------------------------- strings */

static int shash_rebuild(Core *c, uint32_t cap)
{
    int32_t *t = big_realloc(NULL, cap * sizeof(int32_t));
    if (!t)
        return -1;
    memset(t, 0xff, cap * sizeof(int32_t));
    for (int32_t i = 0; i < c->nstrs; i++) {
        if (c->strs[i].len & STR_UNHASHED)
            continue;
        uint32_t at = (uint32_t)c->strs[i].hash & (cap - 1);
        while (t[at] >= 0)
            at = (at + 1) & (cap - 1);
        t[at] = i;
    }
    big_free(c->shash);
    c->shash = t;
    c->shash_cap = cap;
    return 0;
}

/* The id of the string s[0..n), or -1; with create, a new id is made for a string never seen. -2 on error. */
static int32_t intern_h(Core *c, const char *s, size_t n, uint64_t h, int create)
{
    if (c->shash_cap) {
        uint32_t at = (uint32_t)h & (c->shash_cap - 1);
        for (;;) {
            int32_t id = c->shash[at];
            if (id < 0)
                break;
            Str *e = &c->strs[id];
            if (e->hash == h && e->len == n && memcmp(c->sarena.p + e->off, s, n) == 0)
                return id;
            at = (at + 1) & (c->shash_cap - 1);
        }
    }
    if (!create)
        return -1;
    if ((uint32_t)(c->nstrs + 1) * 2 > c->shash_cap && shash_rebuild(c, c->shash_cap ? c->shash_cap * 2 : 1024) < 0)
        return -2;
    int32_t old_cap = c->strs_cap;
    if (grow((void **)&c->strs, &c->strs_cap, c->nstrs + 1, sizeof(Str)) < 0)
        return -2;
    if (c->strs_cap != old_cap) {
        int32_t cap = old_cap;
        int32_t *arrays[3] = {c->mem_of, c->prod_of, c->rcpt_of};
        for (int k = 0; k < 3; k++) {
            int32_t *p = big_realloc(arrays[k], (size_t)c->strs_cap * sizeof(int32_t));
            if (!p)
                return -2;
            memset(p + cap, 0xff, (size_t)(c->strs_cap - cap) * sizeof(int32_t));
            arrays[k] = p;
        }
        c->mem_of = arrays[0];
        c->prod_of = arrays[1];
        c->rcpt_of = arrays[2];
    }
    if (bytes_reserve(&c->sarena, n) < 0)
        return -2;
    int32_t id = c->nstrs++;
    c->strs[id].off = (uint32_t)c->sarena.len;
    c->strs[id].len = (uint32_t)n;
    c->strs[id].hash = h;
    memcpy(c->sarena.p + c->sarena.len, s, n);
    c->sarena.len += n;
    uint32_t at = (uint32_t)h & (c->shash_cap - 1);
    while (c->shash[at] >= 0)
        at = (at + 1) & (c->shash_cap - 1);
    c->shash[at] = id;
    return id;
}

static inline int32_t intern(Core *c, const char *s, size_t n, int create)
{
    return intern_h(c, s, n, hash_bytes(s, n, HASH_SEED), create);
}

static PyObject *str_object(Core *c, int32_t id)
{
    if (id < 0)
        return PyUnicode_FromStringAndSize("", 0);
    return PyUnicode_DecodeUTF8(c->sarena.p + c->strs[id].off, STR_LEN(&c->strs[id]), "surrogatepass");
}

/* Intern a Python str; -2 on error (with an exception), -3 if it is not a str. */
static int32_t intern_obj(Core *c, PyObject *o)
{
    if (!PyUnicode_Check(o))
        return -3;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s) { /* a lone surrogate: such a state stays with the reference */
        PyErr_Clear();
        return -3;
    }
    return intern(c, s, (size_t)n, 1);
}

/* ---------------------------------------------------------------- idempotency memory */

static inline uint64_t ack_hash(int32_t member_str, const char *key, size_t n)
{
    return hash_bytes(key, n, HASH_SEED ^ ((uint64_t)(uint32_t)member_str * 0x9E3779B97F4A7C15ULL));
}

static int ahash_rebuild(Core *c, uint32_t cap)
{
    Slot *t = big_realloc(NULL, cap * sizeof(Slot));
    if (!t)
        return -1;
    memset(t, 0xff, cap * sizeof(Slot));
    for (int32_t i = 0; i < c->nacks; i++) {
        AckEnt *e = &c->acks[i];
        uint64_t h = ack_hash(e->member_str, c->karena.p + e->key_off, e->key_len);
        uint32_t at = (uint32_t)h & (cap - 1);
        while (t[at].id >= 0)
            at = (at + 1) & (cap - 1);
        t[at].id = i;
        t[at].tag = (uint32_t)(h >> 32);
    }
    big_free(c->ahash);
    c->ahash = t;
    c->ahash_cap = cap;
    return 0;
}

static int32_t ack_find(Core *c, int32_t member_str, const char *key, size_t n, uint64_t h)
{
    if (!c->ahash_cap)
        return -1;
    uint32_t at = (uint32_t)h & (c->ahash_cap - 1);
    uint32_t tag = (uint32_t)(h >> 32);
    for (;;) {
        int32_t id = c->ahash[at].id;
        if (id < 0)
            return -1;
        if (c->ahash[at].tag != tag) { /* most probes end here, without touching the entry */
            at = (at + 1) & (c->ahash_cap - 1);
            continue;
        }
        AckEnt *e = &c->acks[id];
        if (e->member_str == member_str && e->key_len == n &&
            memcmp(c->karena.p + e->key_off, key, n) == 0)
            return id;
        at = (at + 1) & (c->ahash_cap - 1);
    }
}

/* A key copied into the key arena: its offset, or -1 on error. */
static i64 store_key(Core *c, const char *key, size_t n)
{
    if (bytes_reserve(&c->karena, n) < 0)
        return -1;
    i64 off = (i64)c->karena.len;
    memcpy(c->karena.p + off, key, n);
    c->karena.len += n;
    return off;
}

static AckEnt *ack_add(Core *c, int32_t member_str, uint32_t key_off, uint32_t key_len, uint64_t h)
{
    if ((uint32_t)(c->nacks + 1) * 2 > c->ahash_cap && ahash_rebuild(c, c->ahash_cap ? c->ahash_cap * 2 : 1024) < 0)
        return NULL;
    if (grow((void **)&c->acks, &c->acks_cap, c->nacks + 1, sizeof(AckEnt)) < 0)
        return NULL;
    int32_t id = c->nacks++;
    AckEnt *e = &c->acks[id];
    memset(e, 0, sizeof *e);
    e->member_str = member_str;
    e->key_off = key_off;
    e->key_len = (uint16_t)key_len;
    uint32_t at = (uint32_t)h & (c->ahash_cap - 1);
    while (c->ahash[at].id >= 0)
        at = (at + 1) & (c->ahash_cap - 1);
    c->ahash[at].id = id;
    c->ahash[at].tag = (uint32_t)(h >> 32);
    return e;
}

/* ---------------------------------------------------------------- pools */

static int32_t order_alloc(Core *c)
{
    if (c->order_free < 0) {
        int32_t old = c->norders_cap;
        if (grow((void **)&c->orders, &c->norders_cap, old + 1, sizeof(Order)) < 0)
            return -1;
        for (int32_t i = c->norders_cap - 1; i >= old; i--) {
            c->orders[i].next = c->order_free;
            c->order_free = i;
        }
    }
    int32_t slot = c->order_free;
    c->order_free = c->orders[slot].next;
    c->norders_used++;
    return slot;
}

static void order_release(Core *c, int32_t slot)
{
    c->orders[slot].next = c->order_free;
    c->orders[slot].live = 0;
    c->order_free = slot;
    c->norders_used--;
}

static int oid_reserve(Core *c, i64 id)
{
    if (id < c->oid_cap)
        return 0;
    i64 next = c->oid_cap ? c->oid_cap : 4096;
    while (next <= id)
        next *= 2;
    int32_t *p = big_realloc(c->oid, (size_t)next * sizeof(int32_t));
    if (!p)
        return -1;
    memset(p + c->oid_cap, 0xff, (size_t)(next - c->oid_cap) * sizeof(int32_t));
    c->oid = p;
    c->oid_cap = next;
    return 0;
}

static int32_t level_alloc(Core *c)
{
    if (c->level_free < 0) {
        int32_t old = c->levels_cap;
        if (grow((void **)&c->levels, &c->levels_cap, old + 1, sizeof(Level)) < 0)
            return -1;
        for (int32_t i = c->levels_cap - 1; i >= old; i--) {
            c->levels[i].next_free = c->level_free;
            c->level_free = i;
        }
    }
    int32_t slot = c->level_free;
    c->level_free = c->levels[slot].next_free;
    c->nlevels_used++;
    return slot;
}

static void level_release(Core *c, int32_t slot)
{
    c->levels[slot].next_free = c->level_free;
    c->level_free = slot;
    c->nlevels_used--;
}

/* ---------------------------------------------------------------- book sides */

static inline i64 side_key(int side_index, i64 price) { return side_index == 0 ? price : -price; }

/* Position of the level with this key, or -(insertion point) - 1. */
static int32_t side_find(Side *s, i64 key)
{
    int32_t lo = 0, hi = s->n;
    while (lo < hi) {
        int32_t mid = (lo + hi) >> 1;
        if (s->key[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n && s->key[lo] == key)
        return lo;
    return -lo - 1;
}

/* The level slot for price on this side, created empty if there is none; -1 on error. */
static int32_t side_level(Core *c, Side *s, int side_index, i64 price)
{
    i64 key = side_key(side_index, price);
    /* the common case: a new best, or the best itself */
    int32_t at;
    if (s->n && s->key[s->n - 1] == key)
        return s->lv[s->n - 1];
    if (!s->n || s->key[s->n - 1] < key)
        at = -s->n - 1;
    else
        at = side_find(s, key);
    if (at >= 0)
        return s->lv[at];
    at = -at - 1;
    if (s->n == s->cap) {
        int32_t cap = s->cap;
        if (grow((void **)&s->lv, &cap, s->n + 1, sizeof(int32_t)) < 0)
            return -1;
        int32_t cap2 = s->cap;
        if (grow((void **)&s->key, &cap2, s->n + 1, sizeof(i64)) < 0)
            return -1;
        s->cap = cap;
    }
    int32_t slot = level_alloc(c);
    if (slot < 0)
        return -1;
    memmove(s->lv + at + 1, s->lv + at, (size_t)(s->n - at) * sizeof(int32_t));
    memmove(s->key + at + 1, s->key + at, (size_t)(s->n - at) * sizeof(i64));
    s->lv[at] = slot;
    s->key[at] = key;
    s->n++;
    Level *l = &c->levels[slot];
    l->price = price;
    l->open_lots = 0;
    l->count = 0;
    l->head = l->tail = -1;
    return slot;
}

static void side_drop_level(Core *c, Side *s, int side_index, i64 price)
{
    int32_t at = s->n && s->key[s->n - 1] == side_key(side_index, price) ? s->n - 1 : side_find(s, side_key(side_index, price));
    if (at < 0)
        return;
    level_release(c, s->lv[at]);
    memmove(s->lv + at, s->lv + at + 1, (size_t)(s->n - at - 1) * sizeof(int32_t));
    memmove(s->key + at, s->key + at + 1, (size_t)(s->n - at - 1) * sizeof(i64));
    s->n--;
}

/* BookSide.add: append at the tail of its price level. */
static int book_add(Core *c, Product *p, int32_t slot)
{
    Order *o = &c->orders[slot];
    int side_index = o->side == SIDE_B ? 0 : 1;
    int32_t lv = side_level(c, &p->side[side_index], side_index, o->price);
    if (lv < 0)
        return -1;
    Level *l = &c->levels[lv];
    o = &c->orders[slot];
    o->level = lv;
    o->prev = l->tail;
    o->next = -1;
    if (l->tail >= 0)
        c->orders[l->tail].next = slot;
    else
        l->head = slot;
    l->tail = slot;
    l->open_lots += o->open_lots;
    l->count++;
    return 0;
}

/* BookSide.remove: unlink a resting order (its level goes when it is empty). */
static void book_remove(Core *c, Product *p, int32_t slot)
{
    Order *o = &c->orders[slot];
    Level *l = &c->levels[o->level];
    if (o->prev >= 0)
        c->orders[o->prev].next = o->next;
    else
        l->head = o->next;
    if (o->next >= 0)
        c->orders[o->next].prev = o->prev;
    else
        l->tail = o->prev;
    l->open_lots -= o->open_lots;
    l->count--;
    o->live = 0;
    if (l->count == 0) {
        int side_index = o->side == SIDE_B ? 0 : 1;
        side_drop_level(c, &p->side[side_index], side_index, l->price);
    }
}

/* ---------------------------------------------------------------- outputs */

static inline i64 *out_record(Bytes *b)
{
    if (b->len + 64 > b->cap && bytes_reserve(b, 64) < 0)
        return NULL;
    i64 *r = (i64 *)(b->p + b->len);
    b->len += 64;
    memset(r, 0, 64);
    return r;
}

#define EV(r)                                                                                                      \
    do {                                                                                                           \
        if (!((r) = out_record(&c->events)))                                                                       \
            return -1;                                                                                             \
    } while (0)

static inline void put128(i64 *r, i128 v)
{
    r[0] = (i64)(uint64_t)v;
    r[1] = (i64)(v >> 64);
}

static inline i64 pair32(int32_t a, int32_t b) { return (i64)(uint32_t)a | ((i64)(uint32_t)b << 32); }


/* ---------------------------------------------------------------- order life */

/* _finish: the order leaves the market; unused cash and receipts go back. The order must be off its level. */
static int finish(Core *c, int32_t slot, i64 sequence, int reason)
{
    Order *o = &c->orders[slot];
    o->live = 0;
    if (o->order_id < c->oid_cap && c->oid[o->order_id] == slot)
        c->oid[o->order_id] = -1;
    if (o->locked) {
        Member *m = &c->members[o->member];
        m->locked -= o->locked;
        m->available += o->locked;
        o->locked = 0;
    }
    for (int32_t r = o->rhead; r >= 0;) {
        int32_t next = c->receipts[r].next;
        c->receipts[r].encumbered = 0;
        c->receipts[r].next = -1;
        r = next;
    }
    o->rhead = o->rtail = -1;
    if (reason) {
        i64 *e;
        EV(e);
        o = &c->orders[slot];
        e[0] = EV_CANCELLED | ((i64)reason << 8);
        e[1] = sequence;
        e[2] = o->order_id;
        e[3] = pair32(c->members[o->member].str, c->products[o->product].str);
        e[4] = o->open_lots;
    }
    return 0;
}

/* A receipt id "parent.n" interned; the receipt slot it names is made by the caller. */
/* A string id for s[0..n) that is not entered in the string hash. */
static int32_t add_unhashed(Core *c, const char *s, size_t n)
{
    int32_t old_cap = c->strs_cap;
    if (grow((void **)&c->strs, &c->strs_cap, c->nstrs + 1, sizeof(Str)) < 0)
        return -2;
    if (c->strs_cap != old_cap) {
        int32_t *arrays[3] = {c->mem_of, c->prod_of, c->rcpt_of};
        for (int k = 0; k < 3; k++) {
            int32_t *p = big_realloc(arrays[k], (size_t)c->strs_cap * sizeof(int32_t));
            if (!p)
                return -2;
            memset(p + old_cap, 0xff, (size_t)(c->strs_cap - old_cap) * sizeof(int32_t));
            arrays[k] = p;
        }
        c->mem_of = arrays[0];
        c->prod_of = arrays[1];
        c->rcpt_of = arrays[2];
    }
    if (bytes_reserve(&c->sarena, n) < 0)
        return -2;
    int32_t id = c->nstrs++;
    c->strs[id].off = (uint32_t)c->sarena.len;
    c->strs[id].len = (uint32_t)n | STR_UNHASHED;
    c->strs[id].hash = 0;
    memcpy(c->sarena.p + c->sarena.len, s, n);
    c->sarena.len += n;
    return id;
}

/* The receipt slot a receipt id names, or -1: through the string hash, else (for a split's child, whose id is
 * not hashed) through its parent, "<parent>.<n>". */
static int32_t find_receipt(Core *c, const char *s, size_t n, uint64_t h)
{
    int32_t id = intern_h(c, s, n, h, 0);
    if (id >= 0 && c->rcpt_of[id] >= 0)
        return c->rcpt_of[id];
    if (!c->lazy_children)
        return -1;
    size_t dot = n;
    while (dot > 0 && s[dot - 1] >= '0' && s[dot - 1] <= '9')
        dot--;
    /* digits after a dot, no leading zero, as the id of a child is written */
    if (dot == n || dot < 2 || s[dot - 1] != '.' || s[dot] == '0' || n - dot > 18)
        return -1;
    i64 k = 0;
    for (size_t i = dot; i < n; i++)
        k = k * 10 + (s[i] - '0');
    int32_t parent = find_receipt(c, s, dot - 1, hash_bytes(s, dot - 1, HASH_SEED));
    if (parent < 0 || c->receipts[parent].first_child < 0)
        return -1;
    int32_t child = c->receipts[parent].first_child;
    if (c->receipts[child].nth == k)
        return child;
    if (c->receipts[child + 1].nth == k)
        return child + 1;
    return -1;
}

static int32_t child_id(Core *c, int32_t parent_str, i64 n)
{
    Str *s = &c->strs[parent_str];
    char small[256];
    size_t len = STR_LEN(s);
    char *buf = len + 24 <= sizeof small ? small : PyMem_Malloc(len + 24);
    if (!buf) {
        PyErr_NoMemory();
        return -2;
    }
    memcpy(buf, c->sarena.p + s->off, len);
    char digits[24];
    int count = 0;
    uint64_t value = (uint64_t)n; /* children counts are never negative */
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    buf[len] = '.';
    for (int i = 0; i < count; i++)
        buf[len + 1 + i] = digits[count - 1 - i];
    int extra = count + 1;
    int32_t id;
    if (c->hash_children) {
        id = intern(c, buf, len + (size_t)extra, 1);
    } else {
        id = add_unhashed(c, buf, len + (size_t)extra);
        c->lazy_children = 1;
    }
    if (buf != small)
        PyMem_Free(buf);
    return id;
}

static int32_t receipt_new(Core *c, int32_t str, int32_t product, int32_t owner, i64 weight, i64 lots, int32_t parent)
{
    if (grow((void **)&c->receipts, &c->receipts_cap, c->nreceipts + 1, sizeof(Receipt)) < 0)
        return -1;
    int32_t slot = c->nreceipts++;
    Receipt *r = &c->receipts[slot];
    r->str = str;
    r->product = product;
    r->owner = owner;
    r->parent = parent;
    r->next = -1;
    r->status = RS_LIVE;
    r->weight = weight;
    r->lots = lots;
    r->encumbered = 0;
    r->children = 0;
    r->first_child = -1;
    r->nth = 0;
    c->rcpt_of[str] = slot; /* as receipts[id] = ... in Python: a clashing id is overwritten */
    return slot;
}

/* _deliver: take lots from the sell order's receipts in the order listed, splitting the last one if needed.
 * Writes split and delivery records; returns the number of deliveries or -1. */
static int64_t deliver(Core *c, int32_t sell, i64 lots, int32_t buyer, i64 sequence)
{
    int64_t count = 0;
    while (lots) {
        Order *o = &c->orders[sell];
        int32_t rs = o->rhead;
        Receipt *r = &c->receipts[rs];
        i64 *e;
        if (r->lots <= lots) {
            o->rhead = r->next;
            if (o->rhead < 0)
                o->rtail = -1;
            r->next = -1;
            r->owner = buyer;
            r->encumbered = 0;
            lots -= r->lots;
            EV(e);
            r = &c->receipts[rs];
            e[0] = EV_DELIVERY;
            e[1] = r->str;
            e[2] = r->weight;
            e[3] = r->lots;
            count++;
            continue;
        }
        i64 delivered_grams = (i64)((i128)r->weight * lots / r->lots);
        i64 remainder_grams = r->weight - delivered_grams;
        i64 remainder_lots = r->lots - lots;
        i64 children = r->children;
        int32_t parent_str = r->str, product = r->product, owner = r->owner, rnext = r->next;
        int32_t d_str = child_id(c, parent_str, children + 1);
        if (d_str < 0)
            return -1;
        int32_t m_str = child_id(c, parent_str, children + 2);
        if (m_str < 0)
            return -1;
        int32_t d = receipt_new(c, d_str, product, buyer, delivered_grams, lots, parent_str);
        if (d < 0)
            return -1;
        int32_t m = receipt_new(c, m_str, product, owner, remainder_grams, remainder_lots, parent_str);
        if (m < 0)
            return -1;
        c->receipts[d].nth = children + 1;
        c->receipts[m].nth = children + 2;
        r = &c->receipts[rs];
        r->first_child = d;
        r->children += 2;
        r->status = RS_SPLIT;
        r->encumbered = 0;
        r->next = -1;
        o = &c->orders[sell];
        c->receipts[m].encumbered = o->order_id;
        c->receipts[m].next = rnext;
        o->rhead = m;
        if (rnext < 0)
            o->rtail = m;
        EV(e);
        e[0] = EV_SPLIT;
        e[1] = sequence;
        e[2] = parent_str;
        e[3] = d_str;
        e[4] = delivered_grams;
        e[5] = pair32((int32_t)lots, (int32_t)remainder_lots);
        e[6] = m_str;
        e[7] = remainder_grams;
        EV(e);
        e[0] = EV_DELIVERY;
        e[1] = d_str;
        e[2] = delivered_grams;
        e[3] = lots;
        count++;
        lots = 0;
    }
    return count;
}

/* _fill: one trade between buy and sell at price. */
static int fill(Core *c, Product *p, int32_t buy_slot, int32_t sell_slot, i64 price, i64 lots, i64 sequence, i64 at_us,
                int aggressor, i64 *first_trade, i64 *ntrades)
{
    Order *buy = &c->orders[buy_slot], *sell = &c->orders[sell_slot];
    i128 notional = (i128)price * lots * p->units;
    Member *buyer = &c->members[buy->member], *seller = &c->members[sell->member];

    i64 per_lot = p->bfee_lot, rate = p->bfee_rate;
    i128 filled_notional = buy->filled_notional = buy->filled_notional + notional;
    i64 filled_lots = buy->filled_lots = buy->filled_lots + lots;
    i64 open_lots = buy->open_lots = buy->open_lots - lots;
    i128 buyer_fee = (i128)filled_lots * per_lot + ceil_million(filled_notional * rate) - buy->fees;
    buy->fees += buyer_fee;
    i128 cost = notional + buyer_fee;
    i128 consumed = buy->consumed = buy->consumed + cost;
    i128 bound = filled_notional + (i128)buy->price * open_lots * p->units;
    i128 new_locked = bound + (i128)(filled_lots + open_lots) * per_lot + ceil_million(bound * rate) - consumed;
    i128 released = buy->locked - cost - new_locked;
    buy->locked = new_locked;
    buyer->locked -= cost + released;
    buyer->available += released;

    sell->filled_notional += notional;
    sell->filled_lots += lots;
    sell->open_lots -= lots;
    i128 seller_fee = (i128)sell->filled_lots * p->sfee_lot + ceil_million(sell->filled_notional * p->sfee_rate) -
                      sell->fees;
    if (seller_fee > notional)
        seller_fee = notional;
    sell->fees += seller_fee;
    seller->available += notional - seller_fee;
    c->centre_fees += buyer_fee + seller_fee;

    int32_t buyer_member = buy->member, seller_member = sell->member;
    i64 buy_id = buy->order_id, sell_id = sell->order_id;
    int64_t deliveries = deliver(c, sell_slot, lots, buyer_member, sequence);
    if (deliveries < 0)
        return -1;
    c->trade_count++;
    i64 trade_id = c->trade_count;
    if (!*ntrades)
        *first_trade = trade_id;
    (*ntrades)++;
    i64 *e;
    EV(e);
    e[0] = EV_TRADE | ((i64)aggressor << 8) | ((i64)p->str << 32);
    e[1] = sequence;
    e[2] = trade_id;
    e[3] = price;
    e[4] = lots;
    e[5] = buy_id;
    e[6] = sell_id;
    e[7] = pair32(c->members[buyer_member].str, c->members[seller_member].str);
    EV(e);
    e[0] = EV_SETTLE | ((i64)deliveries << 8);
    e[1] = at_us;
    put128(e + 2, notional);
    put128(e + 4, buyer_fee);
    put128(e + 6, seller_fee);
    return 0;
}

/* _match: continuous matching of an incoming order by price-time priority at the resting order's price. */
static int match(Core *c, Product *p, int32_t slot, i64 sequence, i64 at_us, i64 *first_trade, i64 *ntrades)
{
    Order *o = &c->orders[slot];
    int is_buy = o->side == SIDE_B;
    int other = is_buy ? 1 : 0;
    Side *s = &p->side[other];
    i64 limit = o->price;
    int32_t member = o->member;
    while (c->orders[slot].open_lots && s->n) {
        int32_t lv = s->lv[s->n - 1];
        Level *l = &c->levels[lv];
        i64 price = l->price;
        if (is_buy ? price > limit : price < limit)
            break;
        while (c->orders[slot].open_lots) {
            int32_t rs = l->head;
            Order *resting = &c->orders[rs];
            if (resting->member == member) {
                book_remove(c, p, rs); /* may drop the level */
                if (finish(c, rs, sequence, CR_SELF_TRADE) < 0)
                    return -1;
                order_release(c, rs);
                if (l->count == 0)
                    break;
                continue;
            }
            i64 open = c->orders[slot].open_lots;
            i64 lots = open < resting->open_lots ? open : resting->open_lots;
            l->open_lots -= lots;
            if (is_buy) {
                if (fill(c, p, slot, rs, price, lots, sequence, at_us, SIDE_B, first_trade, ntrades) < 0)
                    return -1;
            } else {
                if (fill(c, p, rs, slot, price, lots, sequence, at_us, SIDE_S, first_trade, ntrades) < 0)
                    return -1;
            }
            l = &c->levels[lv];
            resting = &c->orders[rs];
            if (resting->open_lots == 0) {
                l->head = resting->next;
                if (l->head >= 0)
                    c->orders[l->head].prev = -1;
                else
                    l->tail = -1;
                l->count--;
                resting->live = 0;
                if (finish(c, rs, sequence, 0) < 0)
                    return -1;
                order_release(c, rs);
                l = &c->levels[lv];
                if (l->count == 0) {
                    side_drop_level(c, s, other, price);
                    break;
                }
            }
        }
    }
    return 0;
}

/* _fillable: lots an incoming order could trade now, not counting the member's own resting orders. */
static i64 fillable(Core *c, Product *p, Order *o)
{
    i64 available = 0;
    Side *s = &p->side[o->side == SIDE_B ? 1 : 0];
    for (int32_t i = s->n - 1; i >= 0; i--) {
        Level *l = &c->levels[s->lv[i]];
        if (o->side == SIDE_B ? l->price > o->price : l->price < o->price)
            break;
        for (int32_t r = l->head; r >= 0; r = c->orders[r].next)
            if (c->orders[r].member != o->member)
                available += c->orders[r].open_lots;
        if (available >= o->open_lots)
            break;
    }
    return available;
}

/* ---------------------------------------------------------------- commands */

typedef struct {
    const char *blob;
    size_t blob_len;
} Blob;

static inline int blob_str(const Blob *b, i64 ref, const char **s, size_t *n)
{
    uint64_t off = (uint64_t)ref >> 24, len = (uint64_t)ref & 0xffffff;
    if (off + len > b->blob_len)
        return -1;
    *s = b->blob + off;
    *n = (size_t)len;
    return 0;
}

/* The string id a blob reference names (-1: never interned), memoised for the run: a batch names the same few
 * members and products over and over. -2 if the reference is out of the blob. */
static inline int32_t lookup_ref(Core *c, const Blob *b, i64 ref)
{
    uint32_t at = (uint32_t)(((uint64_t)ref * 0x9E3779B97F4A7C15ULL) >> 54);
    if (c->refcache[at].ref == ref)
        return c->refcache[at].id;
    const char *s;
    size_t n;
    if (blob_str(b, ref, &s, &n) < 0)
        return -2;
    int32_t id = intern(c, s, n, 0);
    /* A string first interned later in the run (a split receipt's id) is never a member or product, so a
     * remembered -1 stays right for the lookups this serves. */
    c->refcache[at].ref = ref;
    c->refcache[at].id = id;
    return id;
}

static inline size_t utf8_chars(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}


/* Refusals are the rare path: out of line and cold, so that the accepting path is laid out straight. */
__attribute__((cold, noinline)) static int refuse(i64 *res, int reason)
{
    res[0] = ST_REJECTED | ((i64)reason << 16);
    return 0;
}
#define REFUSE(reason_) return refuse(res, (reason_))

static int new_order(Core *c, const i64 *cmd, const Blob *b, i64 *res, int32_t member_str, const char *key,
                     size_t key_len, uint64_t ahash, uint64_t first_receipt_hash)
{
    i64 at_us = cmd[1];
    if (key_len == 0 || (key_len > MAX_KEY_CHARS && utf8_chars(key, key_len) > MAX_KEY_CHARS))
        REFUSE(R_INVALID_KEY);
    if (at_us < 0)
        REFUSE(R_INVALID_TIME);
    int32_t mslot = member_str >= 0 ? c->mem_of[member_str] : -1;
    if (mslot < 0)
        REFUSE(R_UNKNOWN_MEMBER);
    int32_t pstr = lookup_ref(c, b, cmd[4]);
    if (pstr == -2)
        return -2;
    int32_t pslot = pstr >= 0 ? c->prod_of[pstr] : -1;
    if (pslot < 0)
        REFUSE(R_UNKNOWN_PRODUCT);
    Member *m = &c->members[mslot];
    Product *p = &c->products[pslot];
    if (m->suspended)
        REFUSE(R_MEMBER_SUSPENDED);
    if (p->suspended)
        REFUSE(R_PRODUCT_SUSPENDED);
    int side = (int)(cmd[0] >> 8) & 0xff, type = (int)(cmd[0] >> 16) & 0xff, tif = (int)(cmd[0] >> 24) & 0xff;
    if (type == TY_MARKET && tif != TIF_IOC && tif != TIF_FOK)
        REFUSE(R_MARKET_ORDER_TIF);
    if (p->phase == PH_AUCTION) {
        if (type != TY_LIMIT || (tif != TIF_DAY && tif != TIF_GTC))
            REFUSE(R_TIF_NOT_ALLOWED_IN_AUCTION);
    } else if (p->phase != PH_CONTINUOUS) {
        res[2] = p->phase;
        REFUSE(R_MARKET_CLOSED);
    }
    i64 lots = cmd[5], price = cmd[6];
    if (lots <= 0)
        REFUSE(R_NON_POSITIVE_QUANTITY);
    if (lots > p->max_lots) {
        res[2] = p->max_lots;
        REFUSE(R_QUANTITY_ABOVE_MAXIMUM);
    }
    if (price <= 0)
        REFUSE(R_NON_POSITIVE_PRICE);
    if (price % p->tick) {
        res[2] = p->tick;
        REFUSE(R_OFF_TICK_PRICE);
    }
    if (price < p->band_low || price > p->band_high) {
        if (!p->settlement)
            REFUSE(R_NO_REFERENCE_PRICE);
        res[2] = p->band_low;
        res[3] = p->band_high;
        REFUSE(R_PRICE_OUTSIDE_BAND);
    }
    i64 nrc = cmd[7] & 0xffffff;
    uint64_t rc_off = (uint64_t)cmd[7] >> 24;
    i128 lock = 0;
    int32_t found[64];
    int32_t *rcpts = found;
    if (side == SIDE_B) {
        if (nrc)
            REFUSE(R_NO_RECEIPTS_FOR_BUY);
        i128 notional = (i128)price * lots * p->units;
        lock = notional + (i128)lots * p->bfee_lot + ceil_million(notional * p->bfee_rate);
        if (lock > m->available) {
            put128(res + 2, lock);
            put128(res + 4, m->available);
            REFUSE(R_INSUFFICIENT_CASH);
        }
    } else {
        if (cmd[0] & FLAG_RECEIPTS_NOT_LIST) {
            res[2] = 0;
            REFUSE(R_INSUFFICIENT_RECEIPTS);
        }
        if (rc_off + (uint64_t)nrc * 8 > b->blob_len)
            return -2;
        if (nrc > 64) {
            rcpts = PyMem_Malloc((size_t)nrc * sizeof(int32_t));
            if (!rcpts) {
                PyErr_NoMemory();
                return -1;
            }
        }
        i64 total = 0;
        int refused = 0;
        for (i64 i = 0; i < nrc && !refused; i++) {
            i64 ref;
            memcpy(&ref, b->blob + rc_off + i * 8, 8);
            const char *rs;
            size_t rn;
            if (blob_str(b, ref, &rs, &rn) < 0) {
                refused = -2;
                break;
            }
            int32_t rslot = find_receipt(c, rs, rn, i == 0 ? first_receipt_hash : hash_bytes(rs, rn, HASH_SEED));
            res[2] = i;
            Receipt *r = rslot >= 0 ? &c->receipts[rslot] : NULL;
            if (!r || r->status != RS_LIVE) {
                res[0] = ST_REJECTED | ((i64)R_UNKNOWN_RECEIPT << 16);
                refused = 1;
            } else if (r->owner != mslot) {
                res[0] = ST_REJECTED | ((i64)R_RECEIPT_NOT_OWNED << 16);
                refused = 1;
            } else if (r->product != pslot) {
                res[3] = c->products[r->product].str;
                res[0] = ST_REJECTED | ((i64)R_RECEIPT_WRONG_PRODUCT << 16);
                refused = 1;
            } else if (r->encumbered) {
                res[0] = ST_REJECTED | ((i64)R_RECEIPT_ENCUMBERED << 16);
                refused = 1;
            } else {
                for (i64 j = 0; j < i; j++)
                    if (rcpts[j] == rslot) {
                        res[0] = ST_REJECTED | ((i64)R_RECEIPT_LISTED_TWICE << 16);
                        refused = 1;
                        break;
                    }
                rcpts[i] = rslot;
                total += r->lots;
            }
        }
        if (!refused && total < lots) {
            res[2] = total;
            res[0] = ST_REJECTED | ((i64)R_INSUFFICIENT_RECEIPTS << 16);
            refused = 1;
        }
        if (refused) {
            if (rcpts != found)
                PyMem_Free(rcpts);
            return refused < 0 ? -2 : 0;
        }
    }

    /* accepted from here on */
    if (oid_reserve(c, c->sequence + 1) < 0)
        goto fail;
    i64 sequence = ++c->sequence;
    int32_t slot = order_alloc(c);
    if (slot < 0)
        goto fail;
    i64 key_off = store_key(c, key, key_len);
    if (key_off < 0)
        goto fail;
    Order *o = &c->orders[slot];
    memset(o, 0, sizeof *o);
    o->order_id = sequence;
    o->key_off = (uint32_t)key_off;
    o->key_len = (uint32_t)key_len;
    o->member = mslot;
    o->product = pslot;
    o->side = (uint8_t)side;
    o->type = (uint8_t)type;
    o->tif = (uint8_t)tif;
    o->price = price;
    o->open_lots = lots;
    o->priority = sequence;
    o->at_us = at_us;
    o->rhead = o->rtail = -1;
    o->level = o->prev = o->next = -1;
    o->live = 1;
    /* OrderAccepted is not written: it is the command itself with its sequence, and native.py makes it so. */
    i64 *e;
    i64 first_trade = 0, ntrades = 0;
    int status;
    if (tif == TIF_FOK && fillable(c, p, o) < lots) {
        e = out_record(&c->events);
        if (!e)
            goto fail;
        e[0] = EV_CANCELLED | ((i64)CR_FOK_UNFILLED << 8);
        e[1] = sequence;
        e[2] = sequence;
        e[3] = pair32(member_str, p->str);
        e[4] = lots;
        status = ST_KILLED;
        order_release(c, slot);
        if (rcpts != found)
            PyMem_Free(rcpts);
        goto ack;
    }
    if (side == SIDE_B) {
        o->locked = lock;
        m->available -= lock;
        m->locked += lock;
    } else {
        for (i64 i = 0; i < nrc; i++) {
            Receipt *r = &c->receipts[rcpts[i]];
            r->encumbered = sequence;
            r->next = -1;
            if (o->rtail >= 0)
                c->receipts[o->rtail].next = rcpts[i];
            else
                o->rhead = rcpts[i];
            o->rtail = rcpts[i];
        }
    }
    if (rcpts != found)
        PyMem_Free(rcpts);
    rcpts = found;
    if (p->phase == PH_CONTINUOUS && match(c, p, slot, sequence, at_us, &first_trade, &ntrades) < 0)
        return -1;
    o = &c->orders[slot];
    if (o->open_lots == 0) {
        if (finish(c, slot, sequence, 0) < 0)
            return -1;
        status = ST_FILLED;
        res[3] = c->orders[slot].filled_lots;
        order_release(c, slot);
    } else if (tif == TIF_DAY || tif == TIF_GTC) {
        if (book_add(c, p, slot) < 0)
            return -1;
        c->oid[sequence] = slot;
        status = ST_RESTING;
        res[3] = c->orders[slot].filled_lots;
    } else {
        if (finish(c, slot, sequence, type == TY_MARKET ? CR_MARKET_REMAINDER : CR_IOC_REMAINDER) < 0)
            return -1;
        status = ST_CANCELLED;
        res[3] = c->orders[slot].filled_lots;
        order_release(c, slot);
    }
ack:;
    AckEnt *a = ack_add(c, member_str, (uint32_t)key_off, (uint32_t)key_len, ahash);
    if (!a)
        return -1;
    a->status = (uint8_t)status;
    a->sequence = sequence;
    a->order_id = sequence;
    a->filled = res[3];
    a->first_trade = first_trade;
    a->ntrades = ntrades;
    res[0] = status | (1 << 8);
    res[1] = sequence;
    res[2] = sequence;
    res[4] = first_trade;
    res[5] = ntrades;
    return 0;
fail:
    if (rcpts != found)
        PyMem_Free(rcpts);
    return -1;
}

static int cancel_order(Core *c, const i64 *cmd, i64 *res, int32_t member_str, const char *key, size_t key_len,
                        uint64_t ahash)
{
    if (key_len == 0 || (key_len > MAX_KEY_CHARS && utf8_chars(key, key_len) > MAX_KEY_CHARS))
        REFUSE(R_INVALID_KEY);
    if (cmd[1] < 0)
        REFUSE(R_INVALID_TIME);
    int32_t mslot = member_str >= 0 ? c->mem_of[member_str] : -1;
    if (mslot < 0)
        REFUSE(R_UNKNOWN_MEMBER);
    i64 order_id = cmd[4];
    int32_t slot = order_id >= 0 && order_id < c->oid_cap ? c->oid[order_id] : -1;
    if (slot < 0)
        REFUSE(R_UNKNOWN_ORDER);
    Order *o = &c->orders[slot];
    if (o->member != mslot)
        REFUSE(R_NOT_YOUR_ORDER);
    i64 sequence = ++c->sequence;
    Product *p = &c->products[o->product];
    book_remove(c, p, slot);
    if (finish(c, slot, sequence, CR_CLIENT) < 0)
        return -1;
    o = &c->orders[slot];
    i64 filled = o->filled_lots;
    i64 key_off = store_key(c, key, key_len);
    if (key_off < 0)
        return -1;
    order_release(c, slot);
    AckEnt *a = ack_add(c, member_str, (uint32_t)key_off, (uint32_t)key_len, ahash);
    if (!a)
        return -1;
    a->status = ST_CANCELLED;
    a->sequence = sequence;
    a->order_id = order_id;
    a->filled = filled;
    res[0] = ST_CANCELLED | (1 << 8);
    res[1] = sequence;
    res[2] = order_id;
    res[3] = filled;
    return 0;
}

/* One command: 0 done (result written), -1 error, -2 malformed record, 1 declined (nothing changed). */
/* What run() works out for a command ahead of running it, so that it can prefetch the hash slots the command
 * will probe: its member's string id, its idempotency hash, its first receipt's string hash. */
typedef struct {
    int32_t member_str;
    uint64_t ack, receipt;
} Ahead;

/* 0, or -2 for a malformed record */
static int look_ahead(Core *c, const i64 *cmd, const Blob *b, Ahead *a)
{
    const char *key, *rs;
    size_t key_len, rn;
    a->member_str = -1;
    a->ack = a->receipt = 0;
    if (blob_str(b, cmd[2], &key, &key_len) < 0)
        return -2;
    int32_t member_str = lookup_ref(c, b, cmd[3]);
    if (member_str == -2)
        return -2;
    a->member_str = member_str;
    if (member_str >= 0)
        a->ack = ack_hash(member_str, key, key_len);
    if ((cmd[0] & 0xff) == K_NEW && (cmd[7] & 0xffffff)) {
        uint64_t off = (uint64_t)cmd[7] >> 24;
        if (off + 8 > b->blob_len)
            return -2;
        i64 ref;
        memcpy(&ref, b->blob + off, 8);
        if (blob_str(b, ref, &rs, &rn) < 0)
            return -2;
        a->receipt = hash_bytes(rs, rn, HASH_SEED);
    }
    return 0;
}

static int run_one(Core *c, const i64 *cmd, const Blob *b, i64 *res, const Ahead *ahead)
{
    int kind = (int)(cmd[0] & 0xff);
    if (kind != K_NEW && kind != K_CANCEL)
        return -2;
    if (c->sequence >= 0x3fffffff || c->karena.len > 0xf0000000u || c->sarena.len > 0xf0000000u)
        return 1; /* past the direct order table's range or near 4 GiB of text: the reference carries on */
    const char *key;
    size_t key_len;
    if (blob_str(b, cmd[2], &key, &key_len) < 0)
        return -2;
    int32_t member_str = ahead->member_str;
    uint64_t h = ahead->ack;
    if (member_str >= 0) {
        int32_t previous = ack_find(c, member_str, key, key_len, h);
        if (previous >= 0) {
            AckEnt *a = &c->acks[previous];
            res[0] = a->status;
            res[1] = a->sequence;
            res[2] = a->order_id;
            res[3] = a->filled;
            res[4] = a->first_trade;
            res[5] = a->ntrades;
            return 0;
        }
    }
    size_t events_before = c->events.len;
    res[6] = (i64)(events_before / 64);
    int rc = kind == K_NEW ? new_order(c, cmd, b, res, member_str, key, key_len, h, ahead->receipt)
                           : cancel_order(c, cmd, res, member_str, key, key_len, h);
    res[7] = (i64)((c->events.len - events_before) / 64);
    return rc;
}

/* ---------------------------------------------------------------- Python type */

static void core_reset(Core *c)
{
    big_free(c->sarena.p);
    big_free(c->strs);
    big_free(c->shash);
    big_free(c->mem_of);
    big_free(c->prod_of);
    big_free(c->rcpt_of);
    big_free(c->members);
    for (int32_t i = 0; i < c->nproducts; i++)
        for (int k = 0; k < 2; k++) {
            big_free(c->products[i].side[k].lv);
            big_free(c->products[i].side[k].key);
        }
    big_free(c->products);
    big_free(c->receipts);
    big_free(c->orders);
    big_free(c->oid);
    big_free(c->levels);
    big_free(c->karena.p);
    big_free(c->acks);
    big_free(c->ahash);
    Py_CLEAR(c->results.owner);
    Py_CLEAR(c->events.owner);
    char *start = (char *)c + offsetof(Core, loaded);
    memset(start, 0, sizeof(Core) - offsetof(Core, loaded));
    c->order_free = -1;
    c->level_free = -1;
}

static PyObject *core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Core *c = (Core *)type->tp_alloc(type, 0);
    if (c) {
        c->order_free = -1;
        c->level_free = -1;
    }
    return (PyObject *)c;
}

static void core_dealloc(Core *c)
{
    core_reset(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

/* ---------------------------------------------------------------- conversion of numbers */

/* 0 ok; 1 out of range; -1 error */
static int to_i128(PyObject *o, i128 *out)
{
    if (!PyLong_CheckExact(o))
        return 1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (!overflow) {
        *out = v;
        return 0;
    }
    unsigned char buf[16];
#if PY_VERSION_HEX >= 0x030D0000
    if (_PyLong_AsByteArray((PyLongObject *)o, buf, 16, 1, 1, 0) < 0) {
#else
    if (_PyLong_AsByteArray((PyLongObject *)o, buf, 16, 1, 1) < 0) {
#endif
        PyErr_Clear();
        return 1;
    }
    i128 v128 = 0;
    for (int i = 15; i >= 0; i--)
        v128 = (v128 << 8) | buf[i];
    *out = v128;
    return 0;
}

static int to_i64(PyObject *o, i64 *out)
{
    if (!PyLong_CheckExact(o))
        return 1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow)
        return 1;
    *out = v;
    return 0;
}

static PyObject *from_i128(i128 v)
{
    if (v >= INT64_MIN && v <= INT64_MAX)
        return PyLong_FromLongLong((long long)v);
    unsigned char buf[16];
    for (int i = 0; i < 16; i++)
        buf[i] = (unsigned char)(v >> (8 * i));
    return _PyLong_FromByteArray(buf, 16, 1, 1);
}

/* ---------------------------------------------------------------- load */

#define LIM92 ((i128)1 << 92)
#define LIM120 ((i128)1 << 120)
#define LIM90 ((i128)1 << 90)
#define LIM100 ((i128)1 << 100)

/* Sequence item as a number; returns like to_i64 */
#define NUM64(seq, i, out)                                                                                         \
    do {                                                                                                           \
        int rc_ = to_i64(PyTuple_GET_ITEM(seq, i), (out));                                                         \
        if (rc_)                                                                                                   \
            return rc_;                                                                                            \
    } while (0)
#define NUM128(seq, i, out)                                                                                        \
    do {                                                                                                           \
        int rc_ = to_i128(PyTuple_GET_ITEM(seq, i), (out));                                                        \
        if (rc_)                                                                                                   \
            return rc_;                                                                                            \
    } while (0)
#define STR(obj, out)                                                                                              \
    do {                                                                                                           \
        int32_t id_ = intern_obj(c, (obj));                                                                        \
        if (id_ == -2)                                                                                             \
            return -1;                                                                                             \
        if (id_ < 0)                                                                                               \
            return 1;                                                                                              \
        *(out) = id_;                                                                                              \
    } while (0)
#define TUPLE(obj, n)                                                                                              \
    do {                                                                                                           \
        if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) != (n))                                                   \
            return 1;                                                                                              \
    } while (0)

static int code_of(PyObject *o, const char **names, int count)
{
    if (!PyUnicode_Check(o))
        return -1;
    for (int i = 0; i < count; i++)
        if (PyUnicode_CompareWithASCIIString(o, names[i]) == 0)
            return i;
    return -1;
}

static const char *PHASES[] = {"closed", "call_auction", "auction_done", "continuous", "break"};
static const char *SIDES[] = {"", "B", "S"};
static const char *TYPES[] = {"", "limit", "market"};
static const char *TIFS[] = {"", "DAY", "GTC", "IOC", "FOK"};
static const char *STATUSES[] = {"", "done", "resting", "filled", "cancelled", "killed", "amended", "rejected"};
static const char *RSTATUS[] = {"live", "split", "out"};

/* flat = (counters, members, products, receipts, orders, acks) built by native.py from a to_state picture:
 *  counters (sequence, trade_count, centre_fees, deposited, withdrawn, grams_registered, grams_out)
 *  members  ((id, available, locked, suspended), ...)
 *  products ((id, tick, units, max_lots, band_ppm, bfee_lot, bfee_rate, sfee_lot, sfee_rate, suspended, settlement,
 *             band_low, band_high, phase), ...)
 *  receipts ((id, product, owner, weight, lots, encumbered, parent, children, status), ...)
 *  orders   ((product, book side 0/1, order row of to_state), ...) in book order, best level first
 *  acks     ((key, member, sequence, status, order_id, filled, (trade ids)), ...) */
static int load_flat(Core *c, PyObject *flat)
{
    TUPLE(flat, 7);
    c->hash_children = PyObject_IsTrue(PyTuple_GET_ITEM(flat, 6)) != 0;
    PyObject *counters = PyTuple_GET_ITEM(flat, 0), *members = PyTuple_GET_ITEM(flat, 1),
             *products = PyTuple_GET_ITEM(flat, 2), *receipts = PyTuple_GET_ITEM(flat, 3),
             *orders = PyTuple_GET_ITEM(flat, 4), *acks = PyTuple_GET_ITEM(flat, 5);
    TUPLE(counters, 7);
    NUM64(counters, 0, &c->sequence);
    NUM64(counters, 1, &c->trade_count);
    NUM128(counters, 2, &c->centre_fees);
    NUM128(counters, 3, &c->deposited);
    NUM128(counters, 4, &c->withdrawn);
    NUM128(counters, 5, &c->grams_registered);
    NUM128(counters, 6, &c->grams_out);
    if (c->sequence < 0 || c->sequence >= 0x3fffffff || c->deposited < 0 || c->deposited >= LIM120 ||
        c->trade_count < 0 || c->trade_count > ((i64)1 << 60))
        return 1;
    if (!PyTuple_Check(members) || !PyTuple_Check(products) || !PyTuple_Check(receipts) || !PyTuple_Check(orders) ||
        !PyTuple_Check(acks))
        return 1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(members); i++) {
        PyObject *row = PyTuple_GET_ITEM(members, i);
        TUPLE(row, 4);
        int32_t str;
        STR(PyTuple_GET_ITEM(row, 0), &str);
        if (grow((void **)&c->members, &c->members_cap, c->nmembers + 1, sizeof(Member)) < 0)
            return -1;
        Member *m = &c->members[c->nmembers];
        m->str = str;
        NUM128(row, 1, &m->available);
        NUM128(row, 2, &m->locked);
        m->suspended = PyObject_IsTrue(PyTuple_GET_ITEM(row, 3)) == 1;
        c->mem_of[str] = c->nmembers++;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(products); i++) {
        PyObject *row = PyTuple_GET_ITEM(products, i);
        TUPLE(row, 14);
        int32_t str;
        STR(PyTuple_GET_ITEM(row, 0), &str);
        if (grow((void **)&c->products, &c->products_cap, c->nproducts + 1, sizeof(Product)) < 0)
            return -1;
        Product *p = &c->products[c->nproducts];
        memset(p, 0, sizeof *p);
        c->prod_of[str] = c->nproducts++;
        p->str = str;
        NUM64(row, 1, &p->tick);
        NUM64(row, 2, &p->units);
        NUM64(row, 3, &p->max_lots);
        NUM64(row, 4, &p->band_ppm);
        NUM64(row, 5, &p->bfee_lot);
        NUM64(row, 6, &p->bfee_rate);
        NUM64(row, 7, &p->sfee_lot);
        NUM64(row, 8, &p->sfee_rate);
        p->suspended = PyObject_IsTrue(PyTuple_GET_ITEM(row, 9)) == 1;
        NUM64(row, 10, &p->settlement);
        NUM64(row, 11, &p->band_low);
        NUM64(row, 12, &p->band_high);
        int phase = code_of(PyTuple_GET_ITEM(row, 13), PHASES, 5);
        if (phase < 0 || p->tick <= 0 || p->units <= 0 || p->max_lots <= 0)
            return 1;
        p->phase = (uint8_t)phase;
        if ((i128)(p->band_high > 0 ? p->band_high : 1) * p->max_lots * p->units >= LIM92 || p->bfee_lot >= ((i64)1 << 40) ||
            p->sfee_lot >= ((i64)1 << 40) || p->bfee_lot < 0 || p->sfee_lot < 0)
            return 1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(receipts); i++) {
        PyObject *row = PyTuple_GET_ITEM(receipts, i);
        TUPLE(row, 9);
        int32_t str, product_str, owner_str, parent = -1;
        STR(PyTuple_GET_ITEM(row, 0), &str);
        STR(PyTuple_GET_ITEM(row, 1), &product_str);
        STR(PyTuple_GET_ITEM(row, 2), &owner_str);
        PyObject *parent_obj = PyTuple_GET_ITEM(row, 6);
        if (!PyUnicode_Check(parent_obj))
            return 1;
        if (PyUnicode_GET_LENGTH(parent_obj))
            STR(parent_obj, &parent);
        if (c->prod_of[product_str] < 0 || c->mem_of[owner_str] < 0)
            return 1;
        i64 weight, lots, encumbered, children;
        NUM64(row, 3, &weight);
        NUM64(row, 4, &lots);
        NUM64(row, 5, &encumbered);
        NUM64(row, 7, &children);
        int status = code_of(PyTuple_GET_ITEM(row, 8), RSTATUS, 3);
        if (status < 0 || weight <= 0 || weight >= ((i64)1 << 62) || lots <= 0 || lots >= ((i64)1 << 31) ||
            children < 0 || children > ((i64)1 << 60))
            return 1;
        int32_t slot = receipt_new(c, str, c->prod_of[product_str], c->mem_of[owner_str], weight, lots, parent);
        if (slot < 0)
            return -1;
        c->receipts[slot].encumbered = encumbered;
        c->receipts[slot].children = children;
        c->receipts[slot].status = (uint8_t)status;
    }
    if (oid_reserve(c, c->sequence + 1) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(orders); i++) {
        PyObject *item = PyTuple_GET_ITEM(orders, i);
        TUPLE(item, 3);
        int32_t product_str;
        STR(PyTuple_GET_ITEM(item, 0), &product_str);
        int32_t pslot = c->prod_of[product_str];
        PyObject *row = PyTuple_GET_ITEM(item, 2);
        TUPLE(row, 16);
        i64 order_id;
        NUM64(row, 0, &order_id);
        if (order_id <= 0 || order_id > c->sequence || c->oid[order_id] >= 0)
            return 1;
        int32_t slot = order_alloc(c);
        if (slot < 0)
            return -1;
        Order *o = &c->orders[slot];
        memset(o, 0, sizeof *o);
        o->order_id = order_id;
        o->rhead = o->rtail = -1;
        o->level = o->prev = o->next = -1;
        o->live = 1;
        o->product = pslot;
        c->oid[order_id] = slot;
        PyObject *key = PyTuple_GET_ITEM(row, 1);
        if (!PyUnicode_Check(key))
            return 1;
        Py_ssize_t key_len;
        const char *key_s = PyUnicode_AsUTF8AndSize(key, &key_len);
        if (!key_s) {
            PyErr_Clear();
            return 1;
        }
        i64 key_off = store_key(c, key_s, (size_t)key_len);
        if (key_off < 0)
            return -1;
        o = &c->orders[slot];
        o->key_off = (uint32_t)key_off;
        o->key_len = (uint32_t)key_len;
        int32_t member_str;
        STR(PyTuple_GET_ITEM(row, 2), &member_str);
        o->member = c->mem_of[member_str];
        int side = code_of(PyTuple_GET_ITEM(row, 3), SIDES, 3);
        int type = code_of(PyTuple_GET_ITEM(row, 4), TYPES, 3);
        int tif = code_of(PyTuple_GET_ITEM(row, 5), TIFS, 5);
        if (o->member < 0 || side <= 0 || type <= 0 || tif <= 0)
            return 1;
        if ((side == SIDE_B ? 0 : 1) != PyLong_AsLong(PyTuple_GET_ITEM(item, 1)))
            return 1;
        o->side = (uint8_t)side;
        o->type = (uint8_t)type;
        o->tif = (uint8_t)tif;
        NUM64(row, 6, &o->price);
        NUM64(row, 7, &o->open_lots);
        NUM64(row, 8, &o->filled_lots);
        NUM64(row, 9, &o->priority);
        NUM64(row, 10, &o->at_us);
        NUM128(row, 11, &o->locked);
        NUM128(row, 12, &o->filled_notional);
        NUM128(row, 13, &o->consumed);
        NUM128(row, 14, &o->fees);
        Product *p = &c->products[pslot];
        if (o->price <= 0 || o->open_lots <= 0 || o->filled_lots < 0 || o->filled_lots >= ((i64)1 << 40) ||
            (i128)o->price * p->max_lots * p->units >= LIM92 || (i128)o->price * o->open_lots * p->units >= LIM92 ||
            o->filled_notional < 0 || o->filled_notional >= LIM100 || o->consumed < 0 || o->consumed >= LIM120 ||
            o->fees < 0 || o->fees >= LIM120 || o->locked < 0 || o->locked >= LIM120)
            return 1;
        PyObject *rids = PyTuple_GET_ITEM(row, 15);
        if (!PyList_Check(rids) && !PyTuple_Check(rids))
            return 1;
        PyObject *fast = PySequence_Fast(rids, "receipts");
        if (!fast)
            return -1;
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(fast); k++) {
            int32_t rstr = intern_obj(c, PySequence_Fast_GET_ITEM(fast, k));
            int32_t rslot = rstr >= 0 ? c->rcpt_of[rstr] : -1;
            if (rslot < 0 || c->receipts[rslot].next != -1 || c->receipts[rslot].str != rstr ||
                (o->rtail >= 0 && rslot == o->rtail)) {
                Py_DECREF(fast);
                return rstr == -2 ? -1 : 1;
            }
            o = &c->orders[slot];
            if (o->rtail >= 0)
                c->receipts[o->rtail].next = rslot;
            else
                o->rhead = rslot;
            o->rtail = rslot;
        }
        Py_DECREF(fast);
        if (book_add(c, p, slot) < 0)
            return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(acks); i++) {
        PyObject *row = PyTuple_GET_ITEM(acks, i);
        TUPLE(row, 7);
        PyObject *key = PyTuple_GET_ITEM(row, 0);
        if (!PyUnicode_Check(key))
            return 1;
        Py_ssize_t key_len;
        const char *key_s = PyUnicode_AsUTF8AndSize(key, &key_len);
        if (!key_s) {
            PyErr_Clear();
            return 1;
        }
        int32_t member_str;
        STR(PyTuple_GET_ITEM(row, 1), &member_str);
        int status = code_of(PyTuple_GET_ITEM(row, 3), STATUSES, 8);
        PyObject *trades = PyTuple_GET_ITEM(row, 6);
        if (status <= 0 || status == ST_REJECTED || !PyTuple_Check(trades))
            return 1;
        i64 sequence, order_id, filled, first = 0, count = PyTuple_GET_SIZE(trades);
        NUM64(row, 2, &sequence);
        NUM64(row, 4, &order_id);
        NUM64(row, 5, &filled);
        for (i64 k = 0; k < count; k++) {
            i64 id;
            NUM64(trades, k, &id);
            if (k == 0)
                first = id;
            else if (id != first + k)
                return 1; /* trade ids of one command are consecutive; anything else stays with the reference */
        }
        if (key_len > 0xffff || count > (i64)UINT32_MAX)
            return 1; /* beyond what an accepted command can have */
        uint64_t h = ack_hash(member_str, key_s, (size_t)key_len);
        if (ack_find(c, member_str, key_s, (size_t)key_len, h) >= 0)
            return 1;
        i64 key_off = store_key(c, key_s, (size_t)key_len);
        if (key_off < 0)
            return -1;
        AckEnt *a = ack_add(c, member_str, (uint32_t)key_off, (uint32_t)key_len, h);
        if (!a)
            return -1;
        a->status = (uint8_t)status;
        a->sequence = sequence;
        a->order_id = order_id;
        a->filled = filled;
        a->first_trade = first;
        a->ntrades = count;
    }
    return 0;
}

static PyObject *core_load(Core *c, PyObject *flat)
{
    core_reset(c);
    int rc = load_flat(c, flat);
    if (rc < 0) {
        core_reset(c);
        return NULL;
    }
    if (rc > 0) {
        core_reset(c);
        Py_RETURN_FALSE;
    }
    c->loaded = 1;
    Py_RETURN_TRUE;
}

/* ---------------------------------------------------------------- dump */

static PyObject *order_row(Core *c, Order *o)
{
    PyObject *rids = PyList_New(0);
    if (!rids)
        return NULL;
    for (int32_t r = o->rhead; r >= 0; r = c->receipts[r].next) {
        PyObject *s = str_object(c, c->receipts[r].str);
        if (!s || PyList_Append(rids, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(rids);
            return NULL;
        }
        Py_DECREF(s);
    }
    PyObject *key = PyUnicode_DecodeUTF8(c->karena.p + o->key_off, o->key_len, "surrogatepass");
    PyObject *row = Py_BuildValue("[LNNsssLLLLLNNNNN]", (long long)o->order_id, key,
                                  str_object(c, c->members[o->member].str), SIDES[o->side], TYPES[o->type],
                                  TIFS[o->tif], (long long)o->price, (long long)o->open_lots,
                                  (long long)o->filled_lots, (long long)o->priority, (long long)o->at_us,
                                  from_i128(o->locked), from_i128(o->filled_notional), from_i128(o->consumed),
                                  from_i128(o->fees), rids);
    return row;
}

/* dump() -> (counters, members, products, receipts, acks): counters as in load; members ((id, available, locked,
 * suspended), ...); products ((id, phase, bids, asks), ...) with each side a list of levels best first, each level
 * a list of to_state order rows; receipts ((id, row of to_state), ...); acks (as_list rows). native.py sorts and
 * assembles the picture (the product definitions it keeps itself). */
static PyObject *core_dump(Core *c, PyObject *unused)
{
    PyObject *members = PyList_New(0), *products = PyList_New(0), *receipts = PyList_New(0), *acks = PyList_New(0);
    PyObject *result = NULL;
    if (!members || !products || !receipts || !acks)
        goto out;
    for (int32_t i = 0; i < c->nmembers; i++) {
        Member *m = &c->members[i];
        PyObject *row = Py_BuildValue("(NNNO)", str_object(c, m->str), from_i128(m->available), from_i128(m->locked),
                                      m->suspended ? Py_True : Py_False);
        if (!row || PyList_Append(members, row) < 0) {
            Py_XDECREF(row);
            goto out;
        }
        Py_DECREF(row);
    }
    for (int32_t i = 0; i < c->nproducts; i++) {
        Product *p = &c->products[i];
        PyObject *sides[2];
        for (int k = 0; k < 2; k++) {
            sides[k] = PyList_New(0);
            if (!sides[k]) {
                if (k)
                    Py_DECREF(sides[0]);
                goto out;
            }
            Side *s = &p->side[k];
            for (int32_t j = s->n - 1; j >= 0; j--) {
                PyObject *level = PyList_New(0);
                if (!level || PyList_Append(sides[k], level) < 0) {
                    Py_XDECREF(level);
                    Py_DECREF(sides[0]);
                    if (k)
                        Py_DECREF(sides[1]);
                    goto out;
                }
                Py_DECREF(level);
                for (int32_t o = c->levels[s->lv[j]].head; o >= 0; o = c->orders[o].next) {
                    PyObject *row = order_row(c, &c->orders[o]);
                    if (!row || PyList_Append(level, row) < 0) {
                        Py_XDECREF(row);
                        Py_DECREF(sides[0]);
                        if (k)
                            Py_DECREF(sides[1]);
                        goto out;
                    }
                    Py_DECREF(row);
                }
            }
        }
        PyObject *row = Py_BuildValue("(NsNN)", str_object(c, p->str), PHASES[p->phase], sides[0], sides[1]);
        if (!row || PyList_Append(products, row) < 0) {
            Py_XDECREF(row);
            goto out;
        }
        Py_DECREF(row);
    }
    for (int32_t i = 0; i < c->nreceipts; i++) {
        Receipt *r = &c->receipts[i];
        if (c->rcpt_of[r->str] != i)
            continue; /* overwritten by a clashing split id, as in the reference's dict */
        PyObject *row = Py_BuildValue("(N[NNLLLNLs])", str_object(c, r->str), str_object(c, c->products[r->product].str),
                                      str_object(c, c->members[r->owner].str), (long long)r->weight,
                                      (long long)r->lots, (long long)r->encumbered, str_object(c, r->parent),
                                      (long long)r->children, RSTATUS[r->status]);
        if (!row || PyList_Append(receipts, row) < 0) {
            Py_XDECREF(row);
            goto out;
        }
        Py_DECREF(row);
    }
    for (int32_t i = 0; i < c->nacks; i++) {
        AckEnt *a = &c->acks[i];
        PyObject *trades = PyList_New((Py_ssize_t)a->ntrades);
        if (!trades)
            goto out;
        for (i64 k = 0; k < a->ntrades; k++)
            PyList_SET_ITEM(trades, k, PyLong_FromLongLong(a->first_trade + k));
        PyObject *row = Py_BuildValue("[NNLsLLN]",
                                      PyUnicode_DecodeUTF8(c->karena.p + a->key_off, a->key_len, "surrogatepass"),
                                      str_object(c, a->member_str), (long long)a->sequence, STATUSES[a->status],
                                      (long long)a->order_id, (long long)a->filled, trades);
        if (!row || PyList_Append(acks, row) < 0) {
            Py_XDECREF(row);
            goto out;
        }
        Py_DECREF(row);
    }
    result = Py_BuildValue("((LLNNNNN)OOOO)", (long long)c->sequence, (long long)c->trade_count,
                           from_i128(c->centre_fees), from_i128(c->deposited), from_i128(c->withdrawn),
                           from_i128(c->grams_registered), from_i128(c->grams_out), members, products, receipts,
                           acks);
out:
    Py_XDECREF(members);
    Py_XDECREF(products);
    Py_XDECREF(receipts);
    Py_XDECREF(acks);
    return result;
}

/* ---------------------------------------------------------------- run */

/* run(commands, blob) -> (done, results, events): commands are 64-byte records; done is how many were run (fewer
 * than given only when the core declined one: the caller runs it elsewhere, after loading the dumped state). */
static PyObject *core_run(Core *c, PyObject *args)
{
    Py_buffer cmds, blob;
    if (!PyArg_ParseTuple(args, "y*y*", &cmds, &blob))
        return NULL;
    PyObject *result = NULL;
    if (!c->loaded) {
        PyErr_SetString(PyExc_RuntimeError, "load() first");
        goto out;
    }
    if (cmds.len % 64) {
        PyErr_SetString(PyExc_ValueError, "commands are 64-byte records");
        goto out;
    }
    Py_ssize_t count = cmds.len / 64;
    for (int i = 0; i < 1024; i++)
        c->refcache[i].ref = -1;
    Py_CLEAR(c->results.owner);
    Py_CLEAR(c->events.owner);
    c->results = (Bytes){NULL, 0, 0, NULL};
    c->events = (Bytes){NULL, 0, 0, NULL};
    /* results: one record per command; events: about three per order on a busy book, grown when more */
    if (!(c->results.owner = PyByteArray_FromStringAndSize(NULL, count * 64)) ||
        !(c->events.owner = PyByteArray_FromStringAndSize(NULL, (count + 16) * 4 * 64)))
        goto out;
    c->results.p = PyByteArray_AS_STRING(c->results.owner);
    c->results.cap = (size_t)count * 64;
    c->events.p = PyByteArray_AS_STRING(c->events.owner);
    c->events.cap = (size_t)(count + 16) * 4 * 64;
    Blob b = {blob.buf, (size_t)blob.len};
    /* Room for an acknowledgement per command up front: the idempotency table is not rebuilt mid-batch, so the
     * slots prefetched below stay where they are. */
    if ((uint32_t)(c->nacks + count + 1) * 2 > c->ahash_cap) {
        uint32_t cap = c->ahash_cap ? c->ahash_cap : 1024;
        while ((uint64_t)(c->nacks + count + 1) * 2 > cap)
            cap *= 2;
        if (ahash_rebuild(c, cap) < 0 || grow((void **)&c->acks, &c->acks_cap, c->nacks + (int32_t)count + 1, sizeof(AckEnt)) < 0)
            goto out;
    }
    enum { AHEAD = 16 };
    Ahead ring[AHEAD];
    const i64 *records = (const i64 *)cmds.buf;
    /* Every record checked before any runs, so a malformed batch changes nothing. */
    for (Py_ssize_t i = 0; i < count; i++) {
        const i64 *r = records + i * 8;
        const char *str;
        size_t n;
        int kind = (int)(r[0] & 0xff), ok = kind == K_NEW || kind == K_CANCEL;
        ok = ok && blob_str(&b, r[2], &str, &n) == 0 && blob_str(&b, r[3], &str, &n) == 0;
        if (ok && kind == K_NEW) {
            int side = (int)(r[0] >> 8) & 0xff, type = (int)(r[0] >> 16) & 0xff, tif = (int)(r[0] >> 24) & 0xff;
            uint64_t off = (uint64_t)r[7] >> 24, nrc = (uint64_t)r[7] & 0xffffff;
            ok = side >= 1 && side <= 2 && type >= 1 && type <= 2 && tif >= 1 && tif <= 4 &&
                 blob_str(&b, r[4], &str, &n) == 0 && off + nrc * 8 <= b.blob_len;
            for (uint64_t k = 0; ok && k < nrc; k++) {
                i64 ref;
                memcpy(&ref, b.blob + off + k * 8, 8);
                ok = blob_str(&b, ref, &str, &n) == 0;
            }
        }
        if (!ok) {
            PyErr_Format(PyExc_ValueError, "malformed command record %zd", i);
            goto out;
        }
    }
    for (Py_ssize_t i = 0; i < AHEAD && i < count; i++)
        if (look_ahead(c, records + i * 8, &b, &ring[i]) < 0) {
            PyErr_Format(PyExc_ValueError, "malformed command record %zd", i);
            goto out;
        }
    Py_ssize_t done = 0;
    for (; done < count; done++) {
        const i64 *cmd = records + done * 8;
        Ahead now = ring[done % AHEAD];
        if (done + AHEAD < count) {
            Ahead *next = &ring[done % AHEAD];
            if (look_ahead(c, records + (done + AHEAD) * 8, &b, next) < 0) {
                PyErr_Format(PyExc_ValueError, "malformed command record %zd", done + AHEAD);
                goto out;
            }
            __builtin_prefetch(&c->ahash[(uint32_t)next->ack & (c->ahash_cap - 1)]);
            if (next->receipt && c->shash_cap)
                __builtin_prefetch(&c->shash[(uint32_t)next->receipt & (c->shash_cap - 1)]);
        }
        if (done + AHEAD / 2 < count) {
            /* halfway: the slot is in cache now; fetch the string and receipt it leads to */
            Ahead *mid = &ring[(done + AHEAD / 2) % AHEAD];
            if (mid->receipt && c->shash_cap) {
                int32_t id = c->shash[(uint32_t)mid->receipt & (c->shash_cap - 1)];
                if (id >= 0) {
                    __builtin_prefetch(&c->strs[id]);
                    __builtin_prefetch(&c->rcpt_of[id]);
                }
            }
        }
        if (done + 2 < count) {
            Ahead *soon = &ring[(done + 2) % AHEAD];
            if (soon->receipt && c->shash_cap) {
                int32_t id = c->shash[(uint32_t)soon->receipt & (c->shash_cap - 1)];
                if (id >= 0) {
                    __builtin_prefetch(c->sarena.p + c->strs[id].off);
                    if (c->rcpt_of[id] >= 0)
                        __builtin_prefetch(&c->receipts[c->rcpt_of[id]]);
                }
            }
        }
        i64 *res = (i64 *)(c->results.p + c->results.len);
        memset(res, 0, 64);
        int rc = run_one(c, cmd, &b, res, &now);
        if (rc == 1)
            break;
        if (rc == -2) {
            PyErr_Format(PyExc_ValueError, "malformed command record %zd", done);
            goto out;
        }
        if (rc < 0) {
            /* Only an allocation can fail, and mid-command: the native state is no longer trusted. */
            c->loaded = 0;
            goto out;
        }
        c->results.len += 64;
    }
    if (PyByteArray_Resize(c->results.owner, (Py_ssize_t)c->results.len) < 0 ||
        PyByteArray_Resize(c->events.owner, (Py_ssize_t)c->events.len) < 0)
        goto out;
    result = Py_BuildValue("(nOO)", done, c->results.owner, c->events.owner);
out:
    Py_CLEAR(c->results.owner);
    Py_CLEAR(c->events.owner);
    c->results = (Bytes){NULL, 0, 0, NULL};
    c->events = (Bytes){NULL, 0, 0, NULL};
    PyBuffer_Release(&cmds);
    PyBuffer_Release(&blob);
    return result;
}

/* names(start) -> the interned strings from id start on (native.py caches them for decoding). */
static PyObject *core_names(Core *c, PyObject *arg)
{
    Py_ssize_t start = PyLong_AsSsize_t(arg);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (start < 0)
        start = 0;
    Py_ssize_t n = c->nstrs > start ? c->nstrs - start : 0;
    PyObject *list = PyList_New(n);
    if (!list)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = str_object(c, (int32_t)(start + i));
        if (!s) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s);
    }
    return list;
}

static PyObject *core_get_sequence(Core *c, void *unused) { return PyLong_FromLongLong(c->sequence); }
static PyObject *core_get_trade_count(Core *c, void *unused) { return PyLong_FromLongLong(c->trade_count); }
static PyObject *core_get_loaded(Core *c, void *unused) { return PyBool_FromLong(c->loaded); }
static PyObject *core_get_live_orders(Core *c, void *unused) { return PyLong_FromLong(c->norders_used); }

static PyMethodDef CORE_METHODS[] = {
    {"load", (PyCFunction)core_load, METH_O, "load(flat) -> True, or False (state reset) if it cannot be native"},
    {"dump", (PyCFunction)core_dump, METH_NOARGS, "dump() -> the state as native.py assembles it"},
    {"run", (PyCFunction)core_run, METH_VARARGS, "run(commands, blob) -> (done, results, events)"},
    {"names", (PyCFunction)core_names, METH_O, "names(start) -> interned strings from id start"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef CORE_GETSET[] = {
    {"sequence", (getter)core_get_sequence, NULL, NULL, NULL},
    {"trade_count", (getter)core_get_trade_count, NULL, NULL, NULL},
    {"loaded", (getter)core_get_loaded, NULL, NULL, NULL},
    {"live_orders", (getter)core_get_live_orders, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CORE_TYPE = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ingot.market.engine._nativecore.Book",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = core_new,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = CORE_METHODS,
    .tp_getset = CORE_GETSET,
    .tp_doc = "The native state of new orders and cancels; see native.py.",
};

/* ---------------------------------------------------------------- pack: command objects -> records and blob
 * The same bytes as native.py's _pack_python (tests/market/test_native_core.py compares them): a string object
 * met again (by identity) is not written twice. NewOrder and CancelOrder are slotted dataclasses; their fields are
 * read at the offsets of their member descriptors, found by configure_pack. */

#include <structmember.h>

enum { NO_key, NO_at_us, NO_member_id, NO_product_id, NO_side, NO_lots, NO_price_fen, NO_order_type, NO_tif,
       NO_receipt_ids, NO_N };
static const char *NEWORDER_F[] = {"key", "at_us", "member_id", "product_id", "side", "lots", "price_fen",
                                   "order_type", "tif", "receipt_ids", NULL};
enum { CO_key, CO_at_us, CO_member_id, CO_order_id, CO_N };
static const char *CANCEL_F[] = {"key", "at_us", "member_id", "order_id", NULL};
static PyTypeObject *NEWORDER_TYPE, *CANCEL_TYPE;
static Py_ssize_t NEWORDER_OFF[NO_N], CANCEL_OFF[CO_N];

static int slot_offsets(PyObject *type, const char **fields, Py_ssize_t *offsets)
{
    for (int i = 0; fields[i]; i++) {
        PyObject *d = PyObject_GetAttrString(type, fields[i]);
        if (!d)
            return -1;
        if (!Py_IS_TYPE(d, &PyMemberDescr_Type) || ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
            Py_DECREF(d);
            PyErr_Format(PyExc_TypeError, "%s is not a slot", fields[i]);
            return -1;
        }
        offsets[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
    }
    return 0;
}

static PyObject *configure_pack(PyObject *module, PyObject *args)
{
    PyObject *new_order, *cancel;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &new_order, &PyType_Type, &cancel))
        return NULL;
    if (slot_offsets(new_order, NEWORDER_F, NEWORDER_OFF) < 0 || slot_offsets(cancel, CANCEL_F, CANCEL_OFF) < 0)
        return NULL;
    Py_XSETREF(NEWORDER_TYPE, (PyTypeObject *)Py_NewRef(new_order));
    Py_XSETREF(CANCEL_TYPE, (PyTypeObject *)Py_NewRef(cancel));
    Py_RETURN_NONE;
}

#define FIELD(obj, offsets, i) (*(PyObject **)((char *)(obj) + (offsets)[i]))

typedef struct {
    Bytes blob;
    struct {
        PyObject *obj;
        i64 ref;
    } seen[512]; /* strings already written, by identity (direct-mapped) */
} Packer;

/* UTF-8 (surrogates passed through, as str.encode("utf-8", "surrogatepass")) of a str appended to the blob;
 * its reference, -1 if it cannot be packed, -2 on error. */
static i64 pack_str(Packer *pk, PyObject *o, int remember)
{
    uint32_t at = (uint32_t)(((uintptr_t)o >> 4) & 511);
    if (remember && pk->seen[at].obj == o)
        return pk->seen[at].ref;
    Py_ssize_t n;
    const char *data = PyUnicode_AsUTF8AndSize(o, &n);
    PyObject *encoded = NULL;
    if (!data) {
        PyErr_Clear();
        encoded = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
        if (!encoded)
            return -2;
        data = PyBytes_AS_STRING(encoded);
        n = PyBytes_GET_SIZE(encoded);
    }
    i64 ref = -1;
    if (n < (1 << 24) && bytes_reserve(&pk->blob, (size_t)n) == 0) {
        ref = STR_REF(pk->blob.len, n);
        memcpy(pk->blob.p + pk->blob.len, data, (size_t)n);
        pk->blob.len += (size_t)n;
    } else if (PyErr_Occurred()) {
        ref = -2;
    }
    Py_XDECREF(encoded);
    if (remember && ref >= 0) {
        pk->seen[at].obj = o;
        pk->seen[at].ref = ref;
    }
    return ref;
}

static int int64_of(PyObject *o, i64 *out)
{
    if (!PyLong_CheckExact(o))
        return 0;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = v;
    return 1;
}

static PyObject *CODE_STR[3][5]; /* the code strings, interned: commands.py's constants are these objects */

static int code_exact(PyObject *o, const char **names, int count, int table)
{
    if (!PyUnicode_CheckExact(o))
        return -1;
    for (int i = 1; i < count; i++)
        if (o == CODE_STR[table][i])
            return i;
    for (int i = 1; i < count; i++)
        if (PyUnicode_CompareWithASCIIString(o, names[i]) == 0)
            return i;
    return -1;
}

/* pack(commands: list) -> (records, blob, -1), or (None, None, index of the first command it cannot carry). */
static PyObject *pack(PyObject *module, PyObject *arg)
{
    if (!NEWORDER_TYPE) {
        PyErr_SetString(PyExc_RuntimeError, "configure_pack() first");
        return NULL;
    }
    if (!PyList_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "pack(list)");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(arg);
    Packer *pk = PyMem_Calloc(1, sizeof(Packer));
    if (!pk)
        return PyErr_NoMemory();
    PyObject *records = PyBytes_FromStringAndSize(NULL, count * 64), *result = NULL;
    Py_ssize_t bad = -1;
    if (!records)
        goto out;
    i64 *rec = (i64 *)PyBytes_AS_STRING(records);
    memset(rec, 0, (size_t)count * 64);
    for (Py_ssize_t index = 0; index < count && bad < 0; index++) {
        PyObject *cmd = PyList_GET_ITEM(arg, index);
        i64 *r = rec + index * 8;
        PyTypeObject *kind = Py_TYPE(cmd);
        const Py_ssize_t *off = kind == NEWORDER_TYPE ? NEWORDER_OFF : kind == CANCEL_TYPE ? CANCEL_OFF : NULL;
        if (!off) {
            bad = index;
            break;
        }
        /* key, at_us and member_id are the first three fields of both */
        PyObject *key = FIELD(cmd, off, 0), *at_us = FIELD(cmd, off, 1), *member = FIELD(cmd, off, 2);
        if (!key || !at_us || !member || !PyUnicode_CheckExact(key) || !PyUnicode_CheckExact(member) ||
            !int64_of(at_us, &r[1])) {
            bad = index;
            break;
        }
        if (kind == NEWORDER_TYPE) {
            PyObject *side_o = FIELD(cmd, off, NO_side), *type_o = FIELD(cmd, off, NO_order_type),
                     *tif_o = FIELD(cmd, off, NO_tif), *product = FIELD(cmd, off, NO_product_id),
                     *lots = FIELD(cmd, off, NO_lots), *price = FIELD(cmd, off, NO_price_fen),
                     *receipts = FIELD(cmd, off, NO_receipt_ids);
            if (!side_o || !type_o || !tif_o || !product || !lots || !price || !receipts) {
                bad = index;
                break;
            }
            int side = code_exact(side_o, SIDES, 3, 0), type = code_exact(type_o, TYPES, 3, 1),
                tif = code_exact(tif_o, TIFS, 5, 2);
            if (side < 0 || type < 0 || tif < 0 || !PyUnicode_CheckExact(product) || !int64_of(lots, &r[5]) ||
                !int64_of(price, &r[6])) {
                bad = index;
                break;
            }
            r[0] = K_NEW | (side << 8) | (type << 16) | ((i64)tif << 24);
            if (PyTuple_CheckExact(receipts) || PyList_CheckExact(receipts)) {
                Py_ssize_t n = PySequence_Fast_GET_SIZE(receipts);
                if (n) {
                    PyObject **items = PySequence_Fast_ITEMS(receipts);
                    i64 refs_small[16], *refs = n <= 16 ? refs_small : PyMem_Malloc((size_t)n * 8);
                    if (!refs) {
                        PyErr_NoMemory();
                        goto out;
                    }
                    int ok = n < (1 << 24);
                    for (Py_ssize_t k = 0; k < n && ok; k++) {
                        if (!PyUnicode_CheckExact(items[k])) {
                            ok = 0;
                            break;
                        }
                        refs[k] = pack_str(pk, items[k], 1);
                        if (refs[k] == -2) {
                            if (refs != refs_small)
                                PyMem_Free(refs);
                            goto out;
                        }
                        ok = refs[k] >= 0;
                    }
                    if (ok && bytes_reserve(&pk->blob, (size_t)n * 8) == 0) {
                        r[7] = STR_REF(pk->blob.len, n);
                        memcpy(pk->blob.p + pk->blob.len, refs, (size_t)n * 8);
                        pk->blob.len += (size_t)n * 8;
                    } else if (PyErr_Occurred()) {
                        ok = -1;
                    }
                    if (refs != refs_small)
                        PyMem_Free(refs);
                    if (ok < 0)
                        goto out;
                    if (!ok) {
                        bad = index;
                        break;
                    }
                }
            } else if (side == SIDE_B) {
                int truthy = PyObject_IsTrue(receipts);
                if (truthy < 0)
                    goto out;
                if (truthy) {
                    bad = index;
                    break;
                }
            } else {
                r[0] |= FLAG_RECEIPTS_NOT_LIST;
            }
            i64 kr = pack_str(pk, key, 0), mr = pack_str(pk, member, 1), pr = pack_str(pk, product, 1);
            if (kr == -2 || mr == -2 || pr == -2)
                goto out;
            if (kr < 0 || mr < 0 || pr < 0) {
                bad = index;
                break;
            }
            r[2] = kr;
            r[3] = mr;
            r[4] = pr;
        } else {
            PyObject *order_id = FIELD(cmd, off, CO_order_id);
            if (!order_id || !int64_of(order_id, &r[4])) {
                bad = index;
                break;
            }
            r[0] = K_CANCEL;
            i64 kr = pack_str(pk, key, 0), mr = pack_str(pk, member, 1);
            if (kr == -2 || mr == -2)
                goto out;
            if (kr < 0 || mr < 0) {
                bad = index;
                break;
            }
            r[2] = kr;
            r[3] = mr;
        }
    }
    if (bad >= 0)
        result = Py_BuildValue("(OOn)", Py_None, Py_None, bad);
    else
        result = Py_BuildValue("(Oy#n)", records, pk->blob.p ? pk->blob.p : "", (Py_ssize_t)pk->blob.len,
                               (Py_ssize_t)-1);
out:
    Py_XDECREF(records);
    big_free(pk->blob.p);
    PyMem_Free(pk);
    return result;
}

/* ---------------------------------------------------------------- decode: records -> the reference's objects
 * Outcome, Ack and events are allocated and their slots filled as their __init__ would (the classes' slot offsets
 * come from configure_decode); refusals are left to native.py (None in their place), which words them. */

typedef struct {
    PyTypeObject *type;
    int count;
    Py_ssize_t off[12];
} Cls;

enum { D_OUTCOME, D_ACCEPTED, D_CANCELLED, D_TRADE, D_SETTLE, D_DELIVERY, D_SPLIT, D_N };
static const char *D_NAMES[D_N] = {"Outcome", "OrderAccepted", "OrderCancelled", "TradeExecuted",
                                   "SettlementInstruction", "ReceiptDelivery", "ReceiptSplit"};
static const char *D_FIELDS[D_N][12] = {
    {"ack", "events", "fresh", NULL},
    {"sequence", "order_id", "member_id", "product_id", "side", "order_type", "tif", "price_fen", "lots", "at_us",
     NULL},
    {"sequence", "order_id", "member_id", "product_id", "lots", "reason", NULL},
    {"sequence", "trade_id", "product_id", "price_fen", "lots", "buy_order_id", "sell_order_id", "buyer_id",
     "seller_id", "aggressor", "at_us", NULL},
    {"sequence", "trade_id", "product_id", "buyer_id", "seller_id", "notional_fen", "buyer_fee_fen",
     "seller_fee_fen", "receipts", NULL},
    {"receipt_id", "weight_grams", "lots", NULL},
    {"sequence", "parent_id", "delivered_id", "delivered_grams", "delivered_lots", "remainder_id",
     "remainder_grams", "remainder_lots", NULL},
};
static Cls DCLS[D_N];
static PyTypeObject *ACK_TYPE;
static PyObject *STATUS_STR[8], *REASON_STR[6];
static const char *CANCEL_REASON_NAMES[6] = {"", "client", "self_trade", "ioc_remainder", "market_remainder",
                                             "fok_unfilled"};

static PyObject *configure_decode(PyObject *module, PyObject *classes)
{
    if (!PyDict_Check(classes)) {
        PyErr_SetString(PyExc_TypeError, "configure_decode(dict)");
        return NULL;
    }
    for (int k = 0; k < D_N; k++) {
        PyObject *type = PyDict_GetItemString(classes, D_NAMES[k]);
        if (!type || !PyType_Check(type)) {
            PyErr_Format(PyExc_TypeError, "configure_decode: %s missing", D_NAMES[k]);
            return NULL;
        }
        int count = 0;
        while (D_FIELDS[k][count])
            count++;
        if (slot_offsets(type, D_FIELDS[k], DCLS[k].off) < 0)
            return NULL;
        PyObject *slots = PyObject_GetAttrString(type, "__slots__");
        if (!slots)
            return NULL;
        Py_ssize_t size = PySequence_Size(slots);
        Py_DECREF(slots);
        if (size != count) { /* a class with more slots than named here would be left half-filled */
            PyErr_Format(PyExc_TypeError, "%s has %zd slots, the native core knows %d", D_NAMES[k], size, count);
            return NULL;
        }
        DCLS[k].count = count;
        Py_XSETREF(DCLS[k].type, (PyTypeObject *)Py_NewRef(type));
    }
    PyObject *ack = PyDict_GetItemString(classes, "Ack");
    if (!ack || !PyType_Check(ack) || !PyType_IsSubtype((PyTypeObject *)ack, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure_decode: Ack (a tuple) missing");
        return NULL;
    }
    Py_XSETREF(ACK_TYPE, (PyTypeObject *)Py_NewRef(ack));
    Py_RETURN_NONE;
}

/* A new instance with its slots set from values (new references, stolen; NULL values fail the whole). */
static PyObject *make_obj(int k, PyObject **values)
{
    Cls *cls = &DCLS[k];
    PyObject *obj = NULL;
    for (int i = 0; i < cls->count; i++)
        if (!values[i])
            goto fail;
    obj = cls->type->tp_alloc(cls->type, 0);
    if (!obj)
        goto fail;
    for (int i = 0; i < cls->count; i++)
        *(PyObject **)((char *)obj + cls->off[i]) = values[i];
    return obj;
fail:
    for (int i = 0; i < cls->count; i++)
        Py_XDECREF(values[i]);
    return NULL;
}

static inline PyObject *name_of(PyObject *names, i64 id)
{
    if (id < 0 || id >= PyList_GET_SIZE(names)) {
        PyErr_SetString(PyExc_IndexError, "string id out of the table");
        return NULL;
    }
    return Py_NewRef(PyList_GET_ITEM(names, id));
}

#define L(v) PyLong_FromLongLong((long long)(v))
#define LO32(v) ((i64)((uint64_t)(v) & 0xffffffffu))
#define HI32(v) ((i64)((uint64_t)(v) >> 32))

/* The events of one command: records events[start, start + count), after the OrderAccepted if cmd is a NewOrder. */
static PyObject *decode_events(const i64 *ev, i64 count, PyObject *names, PyObject *cmd, i64 sequence)
{
    PyObject *list = PyList_New(0), *deliveries = NULL;
    if (!list)
        return NULL;
    if (Py_TYPE(cmd) == NEWORDER_TYPE) {
        PyObject *v[10] = {L(sequence), L(sequence)};
        int fields[8] = {NO_member_id, NO_product_id, NO_side, NO_order_type, NO_tif, NO_price_fen, NO_lots, NO_at_us};
        for (int i = 0; i < 8; i++)
            v[2 + i] = Py_XNewRef(FIELD(cmd, NEWORDER_OFF, fields[i]));
        PyObject *accepted = make_obj(D_ACCEPTED, v);
        if (!accepted || PyList_Append(list, accepted) < 0) {
            Py_XDECREF(accepted);
            goto fail;
        }
        Py_DECREF(accepted);
    }
    const i64 *trade = NULL;
    for (i64 i = 0; i < count; i++) {
        const i64 *e = ev + i * 8;
        int kind = (int)(e[0] & 0xff);
        PyObject *obj = NULL;
        if (kind == EV_TRADE) {
            trade = e;
            continue;
        }
        if (kind == EV_DELIVERY) {
            if (!deliveries && !(deliveries = PyList_New(0)))
                goto fail;
            PyObject *v[3] = {name_of(names, e[1]), L(e[2]), L(e[3])};
            obj = make_obj(D_DELIVERY, v);
            if (!obj || PyList_Append(deliveries, obj) < 0) {
                Py_XDECREF(obj);
                goto fail;
            }
            Py_DECREF(obj);
            continue;
        }
        if (kind == EV_CANCELLED) {
            int reason = (int)(e[0] >> 8 & 0xff);
            if (reason < 1 || reason > 5) {
                PyErr_SetString(PyExc_ValueError, "bad cancel reason");
                goto fail;
            }
            PyObject *v[6] = {L(e[1]), L(e[2]), name_of(names, LO32(e[3])), name_of(names, HI32(e[3])), L(e[4]),
                              Py_NewRef(REASON_STR[reason])};
            obj = make_obj(D_CANCELLED, v);
        } else if (kind == EV_SETTLE && trade) {
            const i64 *t = trade;
            int aggressor = (int)(t[0] >> 8 & 0xff);
            PyObject *tv[11] = {L(t[1]), L(t[2]), name_of(names, HI32(t[0])), L(t[3]), L(t[4]), L(t[5]), L(t[6]),
                                name_of(names, LO32(t[7])), name_of(names, HI32(t[7])),
                                Py_NewRef(CODE_STR[0][aggressor == SIDE_B ? 1 : 2]), L(e[1])};
            PyObject *executed = make_obj(D_TRADE, tv);
            if (!executed || PyList_Append(list, executed) < 0) {
                Py_XDECREF(executed);
                goto fail;
            }
            Py_DECREF(executed);
            PyObject *receipts = deliveries ? PyList_AsTuple(deliveries) : PyTuple_New(0);
            Py_CLEAR(deliveries);
            i128 notional = (i128)(((uint128_t)(uint64_t)e[3] << 64) | (uint64_t)e[2]);
            i128 bfee = (i128)(((uint128_t)(uint64_t)e[5] << 64) | (uint64_t)e[4]);
            i128 sfee = (i128)(((uint128_t)(uint64_t)e[7] << 64) | (uint64_t)e[6]);
            PyObject *sv[9] = {L(t[1]), L(t[2]), name_of(names, HI32(t[0])), name_of(names, LO32(t[7])),
                               name_of(names, HI32(t[7])), from_i128(notional), from_i128(bfee), from_i128(sfee),
                               receipts};
            obj = make_obj(D_SETTLE, sv);
            trade = NULL;
        } else if (kind == EV_SPLIT) {
            PyObject *v[8] = {L(e[1]), name_of(names, e[2]), name_of(names, e[3]), L(e[4]), L(LO32(e[5])),
                              name_of(names, e[6]), L(e[7]), L(HI32(e[5]))};
            obj = make_obj(D_SPLIT, v);
        } else {
            PyErr_SetString(PyExc_ValueError, "bad event record");
            goto fail;
        }
        if (!obj || PyList_Append(list, obj) < 0) {
            Py_XDECREF(obj);
            goto fail;
        }
        Py_DECREF(obj);
    }
    Py_XDECREF(deliveries);
    return list;
fail:
    Py_XDECREF(deliveries);
    Py_DECREF(list);
    return NULL;
}

/* decode(results, events, commands, names, start, stop) -> [Outcome or None (a refusal), ...] for commands
 * start..stop-1. */
static PyObject *decode(PyObject *module, PyObject *args)
{
    Py_buffer results, events;
    PyObject *commands, *names;
    Py_ssize_t start, stop;
    if (!ACK_TYPE) {
        PyErr_SetString(PyExc_RuntimeError, "configure_decode() first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*y*O!O!nn", &results, &events, &PyList_Type, &commands, &PyList_Type, &names,
                          &start, &stop))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t nres = results.len / 64, nev = events.len / 64;
    if (start < 0 || stop > nres || stop > PyList_GET_SIZE(commands) || start > stop) {
        PyErr_SetString(PyExc_IndexError, "decode: range outside the batch");
        goto done;
    }
    out = PyList_New(stop - start);
    if (!out)
        goto done;
    for (Py_ssize_t i = start; i < stop; i++) {
        const i64 *w = (const i64 *)results.buf + i * 8;
        PyObject *cmd = PyList_GET_ITEM(commands, i);
        int status = (int)(w[0] & 0xff), fresh = (int)(w[0] >> 8 & 1);
        if (status == ST_REJECTED || status < 1 || status > 7) {
            PyList_SET_ITEM(out, i - start, Py_NewRef(Py_None));
            continue;
        }
        Py_ssize_t key_off = Py_TYPE(cmd) == NEWORDER_TYPE ? NEWORDER_OFF[NO_key] : CANCEL_OFF[CO_key];
        Py_ssize_t member_off = Py_TYPE(cmd) == NEWORDER_TYPE ? NEWORDER_OFF[NO_member_id] : CANCEL_OFF[CO_member_id];
        if (Py_TYPE(cmd) != NEWORDER_TYPE && Py_TYPE(cmd) != CANCEL_TYPE) {
            PyErr_SetString(PyExc_TypeError, "decode: not a packed command");
            goto fail;
        }
        PyObject *trades = PyTuple_New((Py_ssize_t)w[5]);
        if (!trades)
            goto fail;
        for (i64 k = 0; k < w[5]; k++) {
            PyObject *id = L(w[4] + k);
            if (!id) {
                Py_DECREF(trades);
                goto fail;
            }
            PyTuple_SET_ITEM(trades, k, id);
        }
        PyObject *ack = ACK_TYPE->tp_alloc(ACK_TYPE, 8);
        PyObject *values[8] = {Py_XNewRef(*(PyObject **)((char *)cmd + key_off)),
                               Py_XNewRef(*(PyObject **)((char *)cmd + member_off)), L(w[1]),
                               Py_NewRef(STATUS_STR[status]), L(w[2]), L(w[3]), trades, Py_NewRef(Py_None)};
        int ok = ack != NULL;
        for (int k = 0; k < 8; k++) {
            if (!values[k])
                ok = 0;
            if (ack)
                PyTuple_SET_ITEM(ack, k, values[k] ? values[k] : Py_NewRef(Py_None));
            else
                Py_XDECREF(values[k]);
        }
        if (!ok) {
            Py_XDECREF(ack);
            goto fail;
        }
        PyObject *evs;
        if (fresh) {
            if (w[6] < 0 || w[7] < 0 || w[6] + w[7] > nev) {
                Py_DECREF(ack);
                PyErr_SetString(PyExc_IndexError, "decode: events outside the batch");
                goto fail;
            }
            evs = decode_events((const i64 *)events.buf + w[6] * 8, w[7], names, cmd, w[1]);
        } else {
            evs = PyList_New(0);
        }
        PyObject *ov[3] = {ack, evs, Py_NewRef(fresh ? Py_True : Py_False)};
        PyObject *outcome = make_obj(D_OUTCOME, ov);
        if (!outcome)
            goto fail;
        PyList_SET_ITEM(out, i - start, outcome);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyBuffer_Release(&results);
    PyBuffer_Release(&events);
    return out;
}

static PyMethodDef MODULE_METHODS[] = {
    {"configure_decode", configure_decode, METH_O, "configure_decode(classes)"},
    {"decode", decode, METH_VARARGS, "decode(results, events, commands, names, start, stop) -> outcomes"},
    {"configure_pack", configure_pack, METH_VARARGS, "configure_pack(NewOrder, CancelOrder)"},
    {"pack", pack, METH_O, "pack(commands) -> (records, blob, -1) or (None, None, index not packable)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_nativecore", NULL, -1, MODULE_METHODS};

PyMODINIT_FUNC PyInit__nativecore(void)
{
    if (PyType_Ready(&CORE_TYPE) < 0)
        return NULL;
    const char **tables[3] = {SIDES, TYPES, TIFS};
    int sizes[3] = {3, 3, 5};
    for (int t = 0; t < 3; t++)
        for (int i = 1; i < sizes[t]; i++)
            if (!(CODE_STR[t][i] = PyUnicode_InternFromString(tables[t][i])))
                return NULL;
    for (int i = 1; i < 8; i++)
        if (!(STATUS_STR[i] = PyUnicode_InternFromString(STATUSES[i])))
            return NULL;
    for (int i = 1; i < 6; i++)
        if (!(REASON_STR[i] = PyUnicode_InternFromString(CANCEL_REASON_NAMES[i])))
            return NULL;
    PyObject *m = PyModule_Create(&MODULE);
    if (!m)
        return NULL;
    Py_INCREF(&CORE_TYPE);
    if (PyModule_AddObject(m, "Book", (PyObject *)&CORE_TYPE) < 0)
        return NULL;
    return m;
}
