/* The compiled hot path of ingot.market.engine.core: new orders and cancels, with the matching, fills, fees,
 * receipt delivery and splitting and the acknowledgements they produce.
 *
 * This is not a second engine. The state stays where core.py keeps it (the same Order, Level, Member, Receipt
 * objects, the same dicts, heaps and deques), so snapshots, the state hash, the opening auction, amendments and
 * every view are core.py's own code working on state this file wrote. apply() takes a command only if it is a
 * NewOrder or CancelOrder it is sure core.py would accept; at the first doubt -- a refusal, a FOK order, an
 * unusual type anywhere -- it returns None before changing anything and core.py handles the command, so every
 * reason code and message stays in Python. Python integers are used for every number (PyNumber_*), exactly as
 * the interpreter would, so no value can overflow or round differently.
 *
 * Objects are made the way their __init__ would make them but without running it: tp_alloc, then each slot
 * stored at the offset of its member descriptor. configure() reads those offsets from the classes themselves,
 * so a renamed or added slot fails loudly at import rather than writing the wrong field.
 *
 * tests/market/test_compiled_core.py drives this and the pure-Python reference with the same random streams and
 * compares outcomes, events and state hashes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

/* ---------------------------------------------------------------- classes and their slot offsets */

#define MAX_FIELDS 20

typedef struct {
    PyTypeObject *type;
    int count;
    Py_ssize_t off[MAX_FIELDS];
} Cls;

enum { OR_order_id, OR_key, OR_member_id, OR_product_id, OR_side, OR_order_type, OR_tif, OR_price, OR_open_lots,
       OR_filled_lots, OR_priority, OR_at_us, OR_locked_fen, OR_filled_notional, OR_consumed_fen, OR_fees_fen,
       OR_receipts, OR_live, OR_N };
static const char *ORDER_F[] = {"order_id", "key", "member_id", "product_id", "side", "order_type", "tif", "price",
                                "open_lots", "filled_lots", "priority", "at_us", "locked_fen", "filled_notional",
                                "consumed_fen", "fees_fen", "receipts", "live", NULL};
enum { LV_price, LV_orders, LV_open_lots, LV_count, LV_N };
static const char *LEVEL_F[] = {"price", "orders", "open_lots", "count", NULL};
enum { BS_is_bid, BS_levels, BS_heap, BS_N };
static const char *BOOK_F[] = {"is_bid", "levels", "heap", NULL};
enum { ME_member_id, ME_available_fen, ME_locked_fen, ME_suspended, ME_N };
static const char *MEMBER_F[] = {"member_id", "available_fen", "locked_fen", "suspended", NULL};
enum { RC_receipt_id, RC_product_id, RC_owner_id, RC_weight_grams, RC_lots, RC_encumbered_by, RC_parent_id,
       RC_children, RC_status, RC_N };
static const char *RECEIPT_F[] = {"receipt_id", "product_id", "owner_id", "weight_grams", "lots", "encumbered_by",
                                  "parent_id", "children", "status", NULL};
enum { PR_product_id, PR_tick_fen, PR_units_per_lot, PR_max_order_lots, PR_buyer_fee, PR_seller_fee, PR_suspended,
       PR_settlement_price, PR_phase, PR_bids, PR_asks, PR_band_low, PR_band_high, PR_N };
static const char *PRODUCT_F[] = {"product_id", "tick_fen", "units_per_lot", "max_order_lots", "buyer_fee",
                                  "seller_fee", "suspended", "settlement_price", "phase", "bids", "asks", "band_low",
                                  "band_high", NULL};
enum { FS_per_lot_fen, FS_rate_ppm, FS_N };
static const char *FEE_F[] = {"per_lot_fen", "rate_ppm", NULL};
enum { NO_key, NO_at_us, NO_member_id, NO_product_id, NO_side, NO_lots, NO_price_fen, NO_order_type, NO_tif,
       NO_receipt_ids, NO_N };
static const char *NEWORDER_F[] = {"key", "at_us", "member_id", "product_id", "side", "lots", "price_fen",
                                   "order_type", "tif", "receipt_ids", NULL};
enum { CO_key, CO_at_us, CO_member_id, CO_order_id, CO_N };
static const char *CANCEL_F[] = {"key", "at_us", "member_id", "order_id", NULL};
enum { MC_products, MC_members, MC_receipts, MC_orders, MC_acks, MC_sequence, MC_trade_count, MC_centre_fees_fen,
       MC_N };
static const char *CORE_F[] = {"products", "members", "receipts", "orders", "acks", "sequence", "trade_count",
                               "centre_fees_fen", NULL};
enum { OC_ack, OC_events, OC_fresh, OC_N };
static const char *OUTCOME_F[] = {"ack", "events", "fresh", NULL};
/* Events: fields in their dataclass order, which is the order the values are passed to make(). */
static const char *ACCEPTED_F[] = {"sequence", "order_id", "member_id", "product_id", "side", "order_type", "tif",
                                   "price_fen", "lots", "at_us", NULL};
static const char *CANCELLED_F[] = {"sequence", "order_id", "member_id", "product_id", "lots", "reason", NULL};
static const char *TRADE_F[] = {"sequence", "trade_id", "product_id", "price_fen", "lots", "buy_order_id",
                                "sell_order_id", "buyer_id", "seller_id", "aggressor", "at_us", NULL};
static const char *SETTLE_F[] = {"sequence", "trade_id", "product_id", "buyer_id", "seller_id", "notional_fen",
                                 "buyer_fee_fen", "seller_fee_fen", "receipts", NULL};
static const char *DELIVERY_F[] = {"receipt_id", "weight_grams", "lots", NULL};
static const char *SPLIT_F[] = {"sequence", "parent_id", "delivered_id", "delivered_grams", "delivered_lots",
                                "remainder_id", "remainder_grams", "remainder_lots", NULL};

static Cls CORE, ORDER, LEVEL, BOOK, MEMBER, RECEIPT, PRODUCT, FEE, NEWORDER, CANCEL, OUTCOME, ACCEPTED, CANCELLED, TRADE,
    SETTLE, DELIVERY, SPLIT;
static PyTypeObject *ACK_TYPE, *DEQUE_TYPE, *REJECTION_TYPE, *CORE_TYPE;
static PyObject *REFERENCE_APPLY, *APPLY_FUNCTION;
static PyObject *DEQUE_APPEND, *DEQUE_POPLEFT; /* the unbound methods, called without a lookup */
static PyObject *UNKNOWN_ORDER_ZH, *UNKNOWN_ORDER_EN; /* reasons.MESSAGES["unknown_order"] */
static PyObject *UNKNOWN_ORDER_PARTS[4];             /* zh head, zh tail, en head, en tail; NULL: use format() */

/* head and tail around the template's only replacement field "{order}"; 0 if the template is anything else. */
static int split_template(PyObject *template, PyObject **head, PyObject **tail)
{
    PyObject *field = PyUnicode_FromString("{order}");
    if (!field)
        return -1;
    Py_ssize_t length = PyUnicode_GET_LENGTH(template);
    Py_ssize_t at = PyUnicode_Find(template, field, 0, length, 1);
    Py_DECREF(field);
    if (at < -1)
        return -1;
    if (at == -1)
        return 0;
    *head = PyUnicode_Substring(template, 0, at);
    *tail = PyUnicode_Substring(template, at + 7, length);
    if (!*head || !*tail)
        return -1;
    for (int part = 0; part < 2; part++) {
        PyObject *text = part ? *tail : *head;
        if (PyUnicode_FindChar(text, '{', 0, PyUnicode_GET_LENGTH(text), 1) != -1 ||
            PyUnicode_FindChar(text, '}', 0, PyUnicode_GET_LENGTH(text), 1) != -1) {
            Py_CLEAR(*head);
            Py_CLEAR(*tail);
            return 0;
        }
    }
    return 1;
}
static PyObject *HEAPPUSH, *HEAPPOP;
static int configured;

/* Interned names and constant values. */
static PyObject *S_members, *S_products, *S_receipts, *S_orders, *S_acks, *S_sequence, *S_trade_count,
    *S_centre_fees_fen, *S_append, *S_popleft, *S_pop, *S_format, *S_order, *KW_order;
static PyObject *V_two, *T_dot;
static PyObject *V_zero, *V_one, *V_999999, *V_million, *V_empty_tuple;
static PyObject *T_B, *T_S, *T_limit, *T_market, *T_IOC, *T_FOK, *T_DAY, *T_GTC, *T_auction, *T_continuous,
    *T_live, *T_split, *T_done, *T_resting, *T_filled, *T_cancelled, *T_self_trade, *T_client, *T_ioc_remainder,
    *T_market_remainder, *T_unknown_order, *T_order_id, *T_rejected;

static int load_class(Cls *cls, PyObject *type, const char **fields)
{
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "configure expects classes");
        return -1;
    }
    cls->type = (PyTypeObject *)type;
    Py_INCREF(type);
    cls->count = 0;
    for (int index = 0; fields[index]; index++) {
        PyObject *descriptor = PyObject_GetAttrString(type, fields[index]);
        if (!descriptor)
            return -1;
        if (!Py_IS_TYPE(descriptor, &PyMemberDescr_Type) ||
            ((PyMemberDescrObject *)descriptor)->d_member->type != T_OBJECT_EX) {
            Py_DECREF(descriptor);
            PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", ((PyTypeObject *)type)->tp_name, fields[index]);
            return -1;
        }
        cls->off[index] = ((PyMemberDescrObject *)descriptor)->d_member->offset;
        Py_DECREF(descriptor);
        cls->count++;
    }
    return 0;
}

#define SLOT(obj, cls, field) (*(PyObject **)((char *)(obj) + (cls).off[field]))

/* The slot's value (borrowed); NULL with AttributeError if it was never set, as Python would raise. */
static inline PyObject *get(PyObject *obj, const Cls *cls, int field)
{
    PyObject *value = *(PyObject **)((char *)obj + cls->off[field]);
    if (!value)
        PyErr_SetString(PyExc_AttributeError, "slot not set");
    return value;
}

/* Store value (a new reference is taken) in a slot. */
static inline void put(PyObject *obj, const Cls *cls, int field, PyObject *value)
{
    PyObject **where = (PyObject **)((char *)obj + cls->off[field]);
    PyObject *old = *where;
    Py_INCREF(value);
    *where = value;
    Py_XDECREF(old);
}

/* A new instance with every slot set from values[0..count-1], as the class's __init__ would leave it. */
static PyObject *make(const Cls *cls, PyObject **values)
{
    PyObject *obj = cls->type->tp_alloc(cls->type, 0);
    if (!obj)
        return NULL;
    for (int index = 0; index < cls->count; index++) {
        Py_INCREF(values[index]);
        *(PyObject **)((char *)obj + cls->off[index]) = values[index];
    }
    return obj;
}

/* ---------------------------------------------------------------- temporaries
 * Every new reference made while computing goes into a pool released at the end of the function that made it,
 * so the arithmetic below reads like the Python it mirrors. */

typedef struct {
    PyObject **items;
    Py_ssize_t count, capacity;
    PyObject *inline_[48];
} Pool;

#define POOL(name)                                                                                                 \
    Pool name##_;                                                                                                  \
    Pool *name = &name##_;                                                                                         \
    name->items = name->inline_;                                                                                   \
    name->count = 0;                                                                                               \
    name->capacity = 48

static PyObject *grow_and_keep(Pool *pool, PyObject *obj);

static inline PyObject *keep(Pool *pool, PyObject *obj)
{
    if (!obj)
        return NULL;
    if (pool->count == pool->capacity)
        return grow_and_keep(pool, obj);
    pool->items[pool->count++] = obj;
    return obj;
}

static PyObject *grow_and_keep(Pool *pool, PyObject *obj)
{
    {
        Py_ssize_t capacity = pool->capacity * 2;
        PyObject **items = pool->items == pool->inline_ ? PyMem_Malloc(capacity * sizeof(PyObject *))
                                                        : PyMem_Realloc(pool->items, capacity * sizeof(PyObject *));
        if (!items) {
            Py_DECREF(obj);
            PyErr_NoMemory();
            return NULL;
        }
        if (pool->items == pool->inline_)
            memcpy(items, pool->inline_, pool->count * sizeof(PyObject *));
        pool->items = items;
        pool->capacity = capacity;
    }
    pool->items[pool->count++] = obj;
    return obj;
}

static inline void drain(Pool *pool)
{
    while (pool->count)
        Py_DECREF(pool->items[--pool->count]);
}

static inline void release(Pool *pool)
{
    drain(pool);
    if (pool->items != pool->inline_)
        PyMem_Free(pool->items);
}

#define K(expr)                                                                                                    \
    ({                                                                                                             \
        PyObject *kept_ = keep(pool, (expr));                                                                      \
        if (!kept_)                                                                                                \
            goto error;                                                                                            \
        kept_;                                                                                                     \
    })
#define G(obj, cls, field)                                                                                         \
    ({                                                                                                             \
        PyObject *got_ = get((obj), &(cls), (field));                                                              \
        if (!got_)                                                                                                 \
            goto error;                                                                                            \
        got_;                                                                                                      \
    })
#define ADD(a, b) K(PyNumber_Add((a), (b)))
#define SUB(a, b) K(PyNumber_Subtract((a), (b)))
#define MUL(a, b) K(PyNumber_Multiply((a), (b)))
#define FDIV(a, b) K(PyNumber_FloorDivide((a), (b)))
#define CMP(a, op, b)                                                                                              \
    ({                                                                                                             \
        int cmp_ = PyObject_RichCompareBool((a), (b), (op));                                                       \
        if (cmp_ < 0)                                                                                              \
            goto error;                                                                                            \
        cmp_;                                                                                                      \
    })
#define TRUE_(obj)                                                                                                 \
    ({                                                                                                             \
        int true_ = PyObject_IsTrue(obj);                                                                          \
        if (true_ < 0)                                                                                             \
            goto error;                                                                                            \
        true_;                                                                                                     \
    })
#define CHECK(expr)                                                                                                \
    do {                                                                                                           \
        if ((expr) < 0)                                                                                            \
            goto error;                                                                                            \
    } while (0)

/* Python's a == b for two values that are str in every valid state; anything else compares the Python way. */
static inline int equal(PyObject *a, PyObject *b)
{
    if (a == b)
        return 1;
    if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b))
        return PyUnicode_GET_LENGTH(a) == PyUnicode_GET_LENGTH(b) && PyUnicode_Compare(a, b) == 0;
    return PyObject_RichCompareBool(a, b, Py_EQ);
}

/* Fee on a cumulative notional: lots * per_lot + ceil(notional * rate / 1e6), the formula of FeeSchedule.fee. */
static PyObject *fee(PyObject *schedule, PyObject *notional, PyObject *lots)
{
    POOL(pool);
    PyObject *per_lot = G(schedule, FEE, FS_per_lot_fen), *rate = G(schedule, FEE, FS_rate_ppm);
    PyObject *result = PyNumber_Add(MUL(lots, per_lot), FDIV(ADD(MUL(notional, rate), V_999999), V_million));
    release(pool);
    return result;
error:
    release(pool);
    return NULL;
}

/* ---------------------------------------------------------------- one call's context */

typedef struct {
    PyObject *core;
    PyObject *members, *products, *receipts, *orders; /* borrowed from the core for the call */
    PyObject *trade_count, *centre_fees;              /* owned; written back to the core at the end */
    PyObject *events;
} Ctx;

/* A new reference to one of the core's attributes. */
static inline PyObject *attribute(PyObject *core, int field)
{
    PyObject *value = get(core, &CORE, field);
    return value ? Py_NewRef(value) : NULL;
}

static int ctx_open(Ctx *ctx, PyObject *core)
{
    ctx->core = core;
    ctx->trade_count = ctx->centre_fees = NULL;
    ctx->events = NULL;
    if (!(ctx->members = get(core, &CORE, MC_members)) || !(ctx->products = get(core, &CORE, MC_products)) ||
        !(ctx->receipts = get(core, &CORE, MC_receipts)) || !(ctx->orders = get(core, &CORE, MC_orders)))
        return -1;
    if (!PyDict_CheckExact(ctx->members) || !PyDict_CheckExact(ctx->products) ||
        !PyDict_CheckExact(ctx->receipts) || !PyDict_CheckExact(ctx->orders))
        return 1;
    return 0;
}

static int ctx_load_counters(Ctx *ctx)
{
    ctx->trade_count = attribute(ctx->core, MC_trade_count);
    if (!ctx->trade_count)
        return -1;
    ctx->centre_fees = attribute(ctx->core, MC_centre_fees_fen);
    return ctx->centre_fees ? 0 : -1;
}

static int ctx_store_counters(Ctx *ctx)
{
    if (!ctx->trade_count)
        return 0; /* nothing traded */
    put(ctx->core, &CORE, MC_trade_count, ctx->trade_count);
    put(ctx->core, &CORE, MC_centre_fees_fen, ctx->centre_fees);
    return 0;
}

static void ctx_close(Ctx *ctx)
{
    Py_CLEAR(ctx->trade_count);
    Py_CLEAR(ctx->centre_fees);
    Py_CLEAR(ctx->events);
}

static inline PyObject *member_of(Ctx *ctx, PyObject *member_id)
{
    PyObject *member = PyDict_GetItemWithError(ctx->members, member_id);
    if (!member && !PyErr_Occurred())
        PyErr_SetObject(PyExc_KeyError, member_id);
    return member;
}

/* ---------------------------------------------------------------- book sides (BookSide.add / remove) */

static int book_add(PyObject *book, PyObject *order)
{
    POOL(pool);
    PyObject *levels = G(book, BOOK, BS_levels);
    PyObject *price = G(order, ORDER, OR_price);
    PyObject *level = PyDict_GetItemWithError(levels, price);
    if (!level) {
        if (PyErr_Occurred())
            goto error;
        PyObject *queue = K(PyObject_CallNoArgs((PyObject *)DEQUE_TYPE));
        PyObject *values[LV_N] = {price, queue, V_zero, V_zero};
        level = K(make(&LEVEL, values));
        CHECK(PyDict_SetItem(levels, price, level));
        PyObject *is_bid = G(book, BOOK, BS_is_bid);
        PyObject *heap_key = TRUE_(is_bid) ? K(PyNumber_Negative(price)) : price;
        PyObject *args[2] = {G(book, BOOK, BS_heap), heap_key};
        K(PyObject_Vectorcall(HEAPPUSH, args, 2, NULL));
    }
    PyObject *append_args[2] = {G(level, LEVEL, LV_orders), order};
    K(PyObject_Vectorcall(DEQUE_APPEND, append_args, 2, NULL));
    put(level, &LEVEL, LV_open_lots, ADD(G(level, LEVEL, LV_open_lots), G(order, ORDER, OR_open_lots)));
    put(level, &LEVEL, LV_count, ADD(G(level, LEVEL, LV_count), V_one));
    release(pool);
    return 0;
error:
    release(pool);
    return -1;
}

static int book_remove(PyObject *book, PyObject *order)
{
    POOL(pool);
    PyObject *levels = G(book, BOOK, BS_levels);
    PyObject *price = G(order, ORDER, OR_price);
    PyObject *level = PyDict_GetItemWithError(levels, price);
    if (!level) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, price);
        goto error;
    }
    (void)K(Py_NewRef(level));
    put(level, &LEVEL, LV_open_lots, SUB(G(level, LEVEL, LV_open_lots), G(order, ORDER, OR_open_lots)));
    PyObject *count = SUB(G(level, LEVEL, LV_count), V_one);
    put(level, &LEVEL, LV_count, count);
    put(order, &ORDER, OR_live, Py_False);
    if (!TRUE_(count))
        CHECK(PyDict_DelItem(levels, price));
    release(pool);
    return 0;
error:
    release(pool);
    return -1;
}

/* ---------------------------------------------------------------- settlement (MatchingCore._finish / _deliver / _fill) */

static int finish(Ctx *ctx, PyObject *order, PyObject *sequence, PyObject *reason)
{
    POOL(pool);
    put(order, &ORDER, OR_live, Py_False);
    /* self.orders.pop(order.order_id, None), in one lookup */
#if PY_VERSION_HEX >= 0x030D0000
    CHECK(PyDict_Pop(ctx->orders, G(order, ORDER, OR_order_id), NULL));
#else
    K(_PyDict_Pop(ctx->orders, G(order, ORDER, OR_order_id), Py_None));
#endif
    PyObject *locked = G(order, ORDER, OR_locked_fen);
    if (TRUE_(locked)) {
        PyObject *member = member_of(ctx, G(order, ORDER, OR_member_id));
        if (!member)
            goto error;
        put(member, &MEMBER, ME_locked_fen, SUB(G(member, MEMBER, ME_locked_fen), locked));
        put(member, &MEMBER, ME_available_fen, ADD(G(member, MEMBER, ME_available_fen), locked));
        put(order, &ORDER, OR_locked_fen, V_zero);
    }
    PyObject *held = G(order, ORDER, OR_receipts);
    if (TRUE_(held)) {
        PyObject *iterator = K(PyObject_GetIter(held));
        PyObject *receipt;
        while ((receipt = PyIter_Next(iterator))) {
            put(receipt, &RECEIPT, RC_encumbered_by, V_zero);
            Py_DECREF(receipt);
        }
        if (PyErr_Occurred())
            goto error;
        put(order, &ORDER, OR_receipts, K(PyList_New(0)));
    }
    if (reason) {
        PyObject *values[6] = {sequence, G(order, ORDER, OR_order_id), G(order, ORDER, OR_member_id),
                               G(order, ORDER, OR_product_id), G(order, ORDER, OR_open_lots), reason};
        CHECK(PyList_Append(ctx->events, K(make(&CANCELLED, values))));
    }
    release(pool);
    return 0;
error:
    release(pool);
    return -1;
}

static PyObject *deliver(Ctx *ctx, PyObject *sell, PyObject *lots, PyObject *buyer_id, PyObject *sequence)
{
    POOL(pool);
    PyObject *deliveries = K(PyList_New(0));
    PyObject *held = G(sell, ORDER, OR_receipts);
    if (!PyList_CheckExact(held)) {
        PyErr_SetString(PyExc_TypeError, "an order's receipts must be a list");
        goto error;
    }
    while (TRUE_(lots)) {
        if (PyList_GET_SIZE(held) == 0) {
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            goto error;
        }
        PyObject *receipt = PyList_GET_ITEM(held, 0);
        (void)K(Py_NewRef(receipt));
        PyObject *receipt_lots = G(receipt, RECEIPT, RC_lots);
        if (CMP(receipt_lots, Py_LE, lots)) {
            CHECK(PySequence_DelItem(held, 0));
            put(receipt, &RECEIPT, RC_owner_id, buyer_id);
            put(receipt, &RECEIPT, RC_encumbered_by, V_zero);
            lots = SUB(lots, receipt_lots);
            PyObject *values[3] = {G(receipt, RECEIPT, RC_receipt_id), G(receipt, RECEIPT, RC_weight_grams),
                                   receipt_lots};
            CHECK(PyList_Append(deliveries, K(make(&DELIVERY, values))));
            continue;
        }
        PyObject *weight = G(receipt, RECEIPT, RC_weight_grams);
        PyObject *delivered_grams = FDIV(MUL(weight, lots), receipt_lots);
        PyObject *remainder_grams = SUB(weight, delivered_grams);
        PyObject *remainder_lots = SUB(receipt_lots, lots);
        PyObject *parent_id = G(receipt, RECEIPT, RC_receipt_id);
        PyObject *children = G(receipt, RECEIPT, RC_children);
        /* f"{parent}.{children + 1}" and f"{parent}.{children + 2}" */
        PyObject *stem = K(PyUnicode_Concat(parent_id, T_dot));
        PyObject *delivered_id = K(PyUnicode_Concat(stem, K(PyObject_Str(ADD(children, V_one)))));
        PyObject *remainder_id = K(PyUnicode_Concat(stem, K(PyObject_Str(ADD(children, V_two)))));
        PyObject *product_id = G(receipt, RECEIPT, RC_product_id);
        PyObject *delivered_values[RC_N] = {delivered_id, product_id, buyer_id, delivered_grams, lots, V_zero,
                                            parent_id, V_zero, T_live};
        PyObject *delivered = K(make(&RECEIPT, delivered_values));
        PyObject *remainder_values[RC_N] = {remainder_id, product_id, G(receipt, RECEIPT, RC_owner_id),
                                            remainder_grams, remainder_lots, G(sell, ORDER, OR_order_id),
                                            parent_id, V_zero, T_live};
        PyObject *remainder = K(make(&RECEIPT, remainder_values));
        put(receipt, &RECEIPT, RC_children, ADD(children, V_two));
        put(receipt, &RECEIPT, RC_status, T_split);
        put(receipt, &RECEIPT, RC_encumbered_by, V_zero);
        CHECK(PyDict_SetItem(ctx->receipts, delivered_id, delivered));
        CHECK(PyDict_SetItem(ctx->receipts, remainder_id, remainder));
        CHECK(PyList_SetItem(held, 0, Py_NewRef(remainder)));
        PyObject *split_values[8] = {sequence, parent_id, delivered_id, delivered_grams, lots, remainder_id,
                                     remainder_grams, remainder_lots};
        CHECK(PyList_Append(ctx->events, K(make(&SPLIT, split_values))));
        PyObject *delivery_values[3] = {delivered_id, delivered_grams, lots};
        CHECK(PyList_Append(deliveries, K(make(&DELIVERY, delivery_values))));
        lots = V_zero;
    }
    PyObject *result = PyList_AsTuple(deliveries);
    release(pool);
    return result;
error:
    release(pool);
    return NULL;
}

static int fill(Ctx *ctx, PyObject *product, PyObject *buy, PyObject *sell, PyObject *price, PyObject *lots,
                PyObject *sequence, PyObject *at_us, PyObject *aggressor, PyObject *trade_ids)
{
    POOL(pool);
    PyObject *units = G(product, PRODUCT, PR_units_per_lot);
    PyObject *notional = MUL(MUL(price, lots), units);
    PyObject *buyer_id = G(buy, ORDER, OR_member_id), *seller_id = G(sell, ORDER, OR_member_id);
    PyObject *buyer = member_of(ctx, buyer_id);
    if (!buyer)
        goto error;
    PyObject *seller = member_of(ctx, seller_id);
    if (!seller)
        goto error;

    /* Fees on the order's cumulative notional, as in core.py's _fill. */
    PyObject *schedule = G(product, PRODUCT, PR_buyer_fee);
    PyObject *per_lot = G(schedule, FEE, FS_per_lot_fen), *rate = G(schedule, FEE, FS_rate_ppm);
    PyObject *filled_notional = ADD(G(buy, ORDER, OR_filled_notional), notional);
    put(buy, &ORDER, OR_filled_notional, filled_notional);
    PyObject *filled_lots = ADD(G(buy, ORDER, OR_filled_lots), lots);
    put(buy, &ORDER, OR_filled_lots, filled_lots);
    PyObject *open_lots = SUB(G(buy, ORDER, OR_open_lots), lots);
    put(buy, &ORDER, OR_open_lots, open_lots);
    PyObject *buyer_fee = SUB(ADD(MUL(filled_lots, per_lot), FDIV(ADD(MUL(filled_notional, rate), V_999999),
                                                                  V_million)),
                              G(buy, ORDER, OR_fees_fen));
    put(buy, &ORDER, OR_fees_fen, ADD(G(buy, ORDER, OR_fees_fen), buyer_fee));
    PyObject *cost = ADD(notional, buyer_fee);
    PyObject *consumed = ADD(G(buy, ORDER, OR_consumed_fen), cost);
    put(buy, &ORDER, OR_consumed_fen, consumed);
    PyObject *bound_notional = ADD(filled_notional, MUL(MUL(G(buy, ORDER, OR_price), open_lots), units));
    PyObject *new_locked = SUB(ADD(ADD(bound_notional, MUL(ADD(filled_lots, open_lots), per_lot)),
                                   FDIV(ADD(MUL(bound_notional, rate), V_999999), V_million)),
                               consumed);
    PyObject *released = SUB(SUB(G(buy, ORDER, OR_locked_fen), cost), new_locked);
    put(buy, &ORDER, OR_locked_fen, new_locked);
    put(buyer, &MEMBER, ME_locked_fen, SUB(G(buyer, MEMBER, ME_locked_fen), ADD(cost, released)));
    put(buyer, &MEMBER, ME_available_fen, ADD(G(buyer, MEMBER, ME_available_fen), released));

    put(sell, &ORDER, OR_filled_notional, ADD(G(sell, ORDER, OR_filled_notional), notional));
    put(sell, &ORDER, OR_filled_lots, ADD(G(sell, ORDER, OR_filled_lots), lots));
    put(sell, &ORDER, OR_open_lots, SUB(G(sell, ORDER, OR_open_lots), lots));
    PyObject *seller_fee = SUB(K(fee(G(product, PRODUCT, PR_seller_fee), G(sell, ORDER, OR_filled_notional),
                                     G(sell, ORDER, OR_filled_lots))),
                               G(sell, ORDER, OR_fees_fen));
    if (CMP(seller_fee, Py_GT, notional))
        seller_fee = notional;
    put(sell, &ORDER, OR_fees_fen, ADD(G(sell, ORDER, OR_fees_fen), seller_fee));
    put(seller, &MEMBER, ME_available_fen, ADD(G(seller, MEMBER, ME_available_fen), SUB(notional, seller_fee)));
    if (!ctx->trade_count)
        CHECK(ctx_load_counters(ctx));
    PyObject *centre = PyNumber_Add(ctx->centre_fees, ADD(buyer_fee, seller_fee));
    if (!centre)
        goto error;
    Py_SETREF(ctx->centre_fees, centre);

    PyObject *deliveries = K(deliver(ctx, sell, lots, buyer_id, sequence));
    PyObject *trade_id = PyNumber_Add(ctx->trade_count, V_one);
    if (!trade_id)
        goto error;
    Py_SETREF(ctx->trade_count, trade_id);
    CHECK(PyList_Append(trade_ids, trade_id));
    PyObject *product_id = G(product, PRODUCT, PR_product_id);
    PyObject *trade_values[11] = {sequence, trade_id, product_id, price, lots, G(buy, ORDER, OR_order_id),
                                  G(sell, ORDER, OR_order_id), buyer_id, seller_id, aggressor, at_us};
    CHECK(PyList_Append(ctx->events, K(make(&TRADE, trade_values))));
    PyObject *settle_values[9] = {sequence, trade_id, product_id, buyer_id, seller_id, notional, buyer_fee,
                                  seller_fee, deliveries};
    CHECK(PyList_Append(ctx->events, K(make(&SETTLE, settle_values))));
    release(pool);
    return 0;
error:
    release(pool);
    return -1;
}

/* ---------------------------------------------------------------- continuous matching (MatchingCore._match) */

static inline PyObject *queue_head(PyObject *queue)
{
    /* deque[0]; the caller has checked the deque is not empty */
    return PySequence_GetItem(queue, 0);
}

static int match(Ctx *ctx, PyObject *product, PyObject *order, int is_buy, PyObject *sequence, PyObject *at_us,
                 PyObject *trade_ids)
{
    POOL(pool);
    PyObject *book = G(product, PRODUCT, is_buy ? PR_asks : PR_bids);
    PyObject *levels = G(book, BOOK, BS_levels);
    PyObject *heap = G(book, BOOK, BS_heap);
    if (!PyList_CheckExact(heap) || !PyDict_CheckExact(levels)) {
        PyErr_SetString(PyExc_TypeError, "a book side must hold a dict of levels and a list heap");
        goto error;
    }
    PyObject *limit = G(order, ORDER, OR_price);
    PyObject *member_id = G(order, ORDER, OR_member_id);
    PyObject *aggressor = is_buy ? T_B : T_S;
    /* The pool is drained once per level, so a sweep through many levels never exhausts it. */
    while (TRUE_(G(order, ORDER, OR_open_lots)) && PyList_GET_SIZE(heap)) {
        drain(pool);
        PyObject *key = PyList_GET_ITEM(heap, 0);
        (void)K(Py_NewRef(key));
        PyObject *price = is_buy ? key : K(PyNumber_Negative(key));
        PyObject *level = PyDict_GetItemWithError(levels, price);
        if (!level) {
            if (PyErr_Occurred())
                goto error;
            K(PyObject_Vectorcall(HEAPPOP, &heap, 1, NULL));
            continue;
        }
        (void)K(Py_NewRef(level));
        if (is_buy ? CMP(price, Py_GT, limit) : CMP(price, Py_LT, limit))
            break;
        PyObject *queue = G(level, LEVEL, LV_orders);
        while (TRUE_(G(order, ORDER, OR_open_lots)) && PySequence_Size(queue) > 0) {
            PyObject *resting = K(queue_head(queue));
            if (!TRUE_(G(resting, ORDER, OR_live))) {
                K(PyObject_Vectorcall(DEQUE_POPLEFT, &queue, 1, NULL));
                continue;
            }
            int same = equal(G(resting, ORDER, OR_member_id), member_id);
            if (same < 0)
                goto error;
            if (same) {
                K(PyObject_Vectorcall(DEQUE_POPLEFT, &queue, 1, NULL));
                CHECK(book_remove(book, resting));
                CHECK(finish(ctx, resting, sequence, T_self_trade));
                if (!TRUE_(G(level, LEVEL, LV_count)))
                    break;
                continue;
            }
            PyObject *incoming_open = G(order, ORDER, OR_open_lots), *resting_open = G(resting, ORDER, OR_open_lots);
            PyObject *lots = CMP(incoming_open, Py_LT, resting_open) ? incoming_open : resting_open;
            (void)K(Py_NewRef(lots)); /* the fill replaces the slot that held it */
            put(level, &LEVEL, LV_open_lots, SUB(G(level, LEVEL, LV_open_lots), lots));
            if (is_buy)
                CHECK(fill(ctx, product, order, resting, price, lots, sequence, at_us, aggressor, trade_ids));
            else
                CHECK(fill(ctx, product, resting, order, price, lots, sequence, at_us, aggressor, trade_ids));
            if (!TRUE_(G(resting, ORDER, OR_open_lots))) {
                K(PyObject_Vectorcall(DEQUE_POPLEFT, &queue, 1, NULL));
                PyObject *count = SUB(G(level, LEVEL, LV_count), V_one);
                put(level, &LEVEL, LV_count, count);
                put(resting, &ORDER, OR_live, Py_False);
                CHECK(finish(ctx, resting, sequence, NULL));
                if (!TRUE_(count)) {
                    CHECK(PyDict_DelItem(levels, price));
                    break;
                }
            }
        }
        if (!TRUE_(G(level, LEVEL, LV_count)) && PyList_GET_SIZE(heap) && CMP(PyList_GET_ITEM(heap, 0), Py_EQ, key))
            K(PyObject_Vectorcall(HEAPPOP, &heap, 1, NULL));
    }
    release(pool);
    return 0;
error:
    release(pool);
    return -1;
}

/* ---------------------------------------------------------------- commands */

/* A new reference to the Ack tuple (key, member_id, sequence, status, order_id, filled_lots, trade_ids, None). */
static PyObject *make_ack(PyObject *key, PyObject *member_id, PyObject *sequence, PyObject *status,
                          PyObject *order_id, PyObject *filled_lots, PyObject *trade_ids)
{
    PyObject *ack = ACK_TYPE->tp_alloc(ACK_TYPE, 8);
    if (!ack)
        return NULL;
    PyObject *items[8] = {key, member_id, sequence, status, order_id, filled_lots, trade_ids, Py_None};
    for (int index = 0; index < 8; index++)
        PyTuple_SET_ITEM(ack, index, Py_NewRef(items[index]));
    return ack;
}

static PyObject *make_outcome(PyObject *ack, PyObject *events, int fresh)
{
    PyObject *values[3] = {ack, events, fresh ? Py_True : Py_False};
    return make(&OUTCOME, values);
}

static inline int is_int(PyObject *value) { return PyLong_CheckExact(value); }

static inline int is_positive_int(PyObject *value) { return PyLong_CheckExact(value) && _PyLong_Sign(value) > 0; }

static inline int is_str(PyObject *value, PyObject *constant)
{
    return PyUnicode_CheckExact(value) && equal(value, constant) == 1;
}

/* The key checks of _check_key; 1 if they pass. */
static int key_ok(PyObject *key, PyObject *at_us)
{
    if (!PyUnicode_CheckExact(key))
        return 0;
    Py_ssize_t length = PyUnicode_GET_LENGTH(key);
    return length > 0 && length <= 128 && is_int(at_us) && _PyLong_Sign(at_us) >= 0;
}

#define PASS                                                                                                       \
    do {                                                                                                           \
        result = Py_NewRef(Py_None);                                                                               \
        goto done;                                                                                                 \
    } while (0)

static PyObject *new_order(Ctx *ctx, PyObject *command, PyObject *ident)
{
    POOL(pool);
    PyObject *result = NULL;
    PyObject *key = G(command, NEWORDER, NO_key), *at_us = G(command, NEWORDER, NO_at_us);
    PyObject *member_id = G(command, NEWORDER, NO_member_id);
    if (!key_ok(key, at_us))
        PASS;
    PyObject *member = PyDict_GetItemWithError(ctx->members, member_id);
    if (!member) {
        if (PyErr_Occurred())
            PyErr_Clear(); /* core.py raises the same error itself */
        PASS;
    }
    PyObject *product_id = G(command, NEWORDER, NO_product_id);
    if (!PyUnicode_CheckExact(product_id))
        PASS;
    PyObject *product = PyDict_GetItemWithError(ctx->products, product_id);
    if (!product) {
        if (PyErr_Occurred())
            goto error;
        PASS;
    }
    (void)K(Py_NewRef(member));
    (void)K(Py_NewRef(product));
    if (G(member, MEMBER, ME_suspended) != Py_False || G(product, PRODUCT, PR_suspended) != Py_False)
        PASS;
    PyObject *side = G(command, NEWORDER, NO_side);
    int is_buy = is_str(side, T_B);
    if (!is_buy && !is_str(side, T_S))
        PASS;
    PyObject *order_type = G(command, NEWORDER, NO_order_type), *tif = G(command, NEWORDER, NO_tif);
    int is_market = is_str(order_type, T_market);
    if (!is_market && !is_str(order_type, T_limit))
        PASS;
    int resting_tif = is_str(tif, T_DAY) || is_str(tif, T_GTC);
    /* FOK needs the fillable-quantity scan before anything changes; core.py does it. */
    if (!resting_tif && !is_str(tif, T_IOC))
        PASS;
    if (is_market && resting_tif)
        PASS;
    PyObject *phase = G(product, PRODUCT, PR_phase);
    int continuous = is_str(phase, T_continuous);
    if (!continuous && !(is_str(phase, T_auction) && !is_market && resting_tif))
        PASS;
    PyObject *lots = G(command, NEWORDER, NO_lots), *price = G(command, NEWORDER, NO_price_fen);
    if (!is_positive_int(lots) || CMP(lots, Py_GT, G(product, PRODUCT, PR_max_order_lots)))
        PASS;
    if (!is_positive_int(price))
        PASS;
    PyObject *tick = G(product, PRODUCT, PR_tick_fen);
    if (!is_int(tick) || TRUE_(K(PyNumber_Remainder(price, tick))))
        PASS;
    if (CMP(price, Py_LT, G(product, PRODUCT, PR_band_low)) || CMP(price, Py_GT, G(product, PRODUCT, PR_band_high)))
        PASS;
    PyObject *receipt_ids = G(command, NEWORDER, NO_receipt_ids);
    if (!PyTuple_CheckExact(receipt_ids) && !PyList_CheckExact(receipt_ids))
        PASS;
    Py_ssize_t listed = PySequence_Fast_GET_SIZE(receipt_ids);
    PyObject *lock = V_zero, *found = NULL;
    if (is_buy) {
        if (listed)
            PASS;
        PyObject *notional = MUL(MUL(price, lots), G(product, PRODUCT, PR_units_per_lot));
        lock = ADD(notional, K(fee(G(product, PRODUCT, PR_buyer_fee), notional, lots)));
        if (CMP(lock, Py_GT, G(member, MEMBER, ME_available_fen)))
            PASS;
    } else {
        found = K(PyList_New(0));
        PyObject *total = V_zero;
        for (Py_ssize_t index = 0; index < listed; index++) {
            PyObject *rid = PySequence_Fast_GET_ITEM(receipt_ids, index);
            if (!PyUnicode_CheckExact(rid))
                PASS;
            PyObject *receipt = PyDict_GetItemWithError(ctx->receipts, rid);
            if (!receipt) {
                if (PyErr_Occurred())
                    goto error;
                PASS;
            }
            if (!is_str(G(receipt, RECEIPT, RC_status), T_live) ||
                equal(G(receipt, RECEIPT, RC_owner_id), member_id) != 1 ||
                equal(G(receipt, RECEIPT, RC_product_id), G(product, PRODUCT, PR_product_id)) != 1 ||
                TRUE_(G(receipt, RECEIPT, RC_encumbered_by)))
                PASS;
            for (Py_ssize_t seen = 0; seen < PyList_GET_SIZE(found); seen++)
                if (PyList_GET_ITEM(found, seen) == receipt)
                    PASS;
            CHECK(PyList_Append(found, receipt));
            total = ADD(total, G(receipt, RECEIPT, RC_lots));
        }
        if (CMP(total, Py_LT, lots))
            PASS;
    }

    /* Accepted: from here on the state changes. */
    PyObject *sequence = ADD(G(ctx->core, CORE, MC_sequence), V_one);
    put(ctx->core, &CORE, MC_sequence, sequence);
    ctx->events = PyList_New(0);
    if (!ctx->events)
        goto error;
    PyObject *order_values[OR_N] = {sequence, key, member_id, G(product, PRODUCT, PR_product_id), side, order_type,
                                    tif, price, lots, V_zero, sequence, at_us, V_zero, V_zero, V_zero, V_zero,
                                    found ? found : K(PyList_New(0)), Py_True};
    PyObject *order = K(make(&ORDER, order_values));
    PyObject *accepted[10] = {sequence, sequence, member_id, G(product, PRODUCT, PR_product_id), side, order_type,
                              tif, price, lots, at_us};
    CHECK(PyList_Append(ctx->events, K(make(&ACCEPTED, accepted))));
    if (is_buy) {
        put(order, &ORDER, OR_locked_fen, lock);
        put(member, &MEMBER, ME_available_fen, SUB(G(member, MEMBER, ME_available_fen), lock));
        put(member, &MEMBER, ME_locked_fen, ADD(G(member, MEMBER, ME_locked_fen), lock));
    } else {
        for (Py_ssize_t index = 0; index < PyList_GET_SIZE(found); index++)
            put(PyList_GET_ITEM(found, index), &RECEIPT, RC_encumbered_by, sequence);
    }
    PyObject *trade_ids = K(PyList_New(0));
    if (continuous)
        CHECK(match(ctx, product, order, is_buy, sequence, at_us, trade_ids));
    PyObject *status;
    if (!TRUE_(G(order, ORDER, OR_open_lots))) {
        CHECK(finish(ctx, order, sequence, NULL));
        status = T_filled;
    } else if (resting_tif) {
        CHECK(book_add(G(product, PRODUCT, is_buy ? PR_bids : PR_asks), order));
        CHECK(PyDict_SetItem(ctx->orders, sequence, order));
        status = T_resting;
    } else {
        CHECK(finish(ctx, order, sequence, is_market ? T_market_remainder : T_ioc_remainder));
        status = T_cancelled;
    }
    CHECK(ctx_store_counters(ctx));
    PyObject *ack = K(make_ack(key, member_id, sequence, status, sequence, G(order, ORDER, OR_filled_lots),
                               K(PyList_AsTuple(trade_ids))));
    result = make_outcome(ack, ctx->events, 1);
done:
    release(pool);
    return result;
error:
    release(pool);
    return NULL;
}

/* The refusal of a cancel naming no live order, exactly as Refused("unknown_order", field="order_id",
 * order=order_id) words it: the most common refusal on a busy market (the order has just filled), so not worth a
 * trip through Python. */
static PyObject *refuse_unknown_order(PyObject *key, PyObject *member_id, PyObject *order_id)
{
    POOL(pool);
    PyObject *result = NULL;
    PyObject *zh, *en;
    if (UNKNOWN_ORDER_PARTS[0]) {
        /* template == head + "{order}" + tail with no other field, and format() of an int is str(): concatenate */
        PyObject *number = K(PyObject_Str(order_id));
        zh = K(PyUnicode_Concat(K(PyUnicode_Concat(UNKNOWN_ORDER_PARTS[0], number)), UNKNOWN_ORDER_PARTS[1]));
        en = K(PyUnicode_Concat(K(PyUnicode_Concat(UNKNOWN_ORDER_PARTS[2], number)), UNKNOWN_ORDER_PARTS[3]));
    } else {
        PyObject *zh_args[2] = {UNKNOWN_ORDER_ZH, order_id}, *en_args[2] = {UNKNOWN_ORDER_EN, order_id};
        zh = K(PyObject_VectorcallMethod(S_format, zh_args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, KW_order));
        en = K(PyObject_VectorcallMethod(S_format, en_args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, KW_order));
    }
    PyObject *rejection = K(REJECTION_TYPE->tp_alloc(REJECTION_TYPE, 4));
    PyObject *items[4] = {T_unknown_order, zh, en, T_order_id};
    for (int index = 0; index < 4; index++)
        PyTuple_SET_ITEM(rejection, index, Py_NewRef(items[index]));
    PyObject *ack = K(ACK_TYPE->tp_alloc(ACK_TYPE, 8));
    PyObject *fields[8] = {key, member_id, V_zero, T_rejected, V_zero, V_zero, V_empty_tuple, rejection};
    for (int index = 0; index < 8; index++)
        PyTuple_SET_ITEM(ack, index, Py_NewRef(fields[index]));
    PyObject *events = K(PyList_New(0));
    result = make_outcome(ack, events, 0);
error:
    release(pool);
    return result;
}

static PyObject *cancel_order(Ctx *ctx, PyObject *command)
{
    POOL(pool);
    PyObject *result = NULL;
    PyObject *key = G(command, CANCEL, CO_key), *at_us = G(command, CANCEL, CO_at_us);
    PyObject *member_id = G(command, CANCEL, CO_member_id), *order_id = G(command, CANCEL, CO_order_id);
    if (!key_ok(key, at_us) || !is_int(order_id))
        PASS;
    PyObject *member = PyDict_GetItemWithError(ctx->members, member_id);
    if (!member) {
        if (PyErr_Occurred())
            PyErr_Clear();
        PASS;
    }
    PyObject *order = PyDict_GetItemWithError(ctx->orders, order_id);
    if (!order) {
        if (PyErr_Occurred())
            goto error;
        result = refuse_unknown_order(key, member_id, order_id);
        goto done;
    }
    (void)K(Py_NewRef(order));
    if (equal(G(order, ORDER, OR_member_id), member_id) != 1)
        PASS;
    PyObject *product = PyDict_GetItemWithError(ctx->products, G(order, ORDER, OR_product_id));
    if (!product) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, G(order, ORDER, OR_product_id));
        goto error;
    }
    PyObject *side = G(order, ORDER, OR_side);

    PyObject *sequence = ADD(G(ctx->core, CORE, MC_sequence), V_one);
    put(ctx->core, &CORE, MC_sequence, sequence);
    ctx->events = PyList_New(0);
    if (!ctx->events)
        goto error;
    CHECK(book_remove(G(product, PRODUCT, is_str(side, T_B) ? PR_bids : PR_asks), order));
    CHECK(finish(ctx, order, sequence, T_client));
    PyObject *ack = K(make_ack(key, member_id, sequence, T_cancelled, G(order, ORDER, OR_order_id),
                               G(order, ORDER, OR_filled_lots), V_empty_tuple));
    result = make_outcome(ack, ctx->events, 1);
done:
    release(pool);
    return result;
error:
    release(pool);
    return NULL;
}

/* The Outcome of one command, or None when core.py must decide. */
static PyObject *fast_apply(PyObject *core, PyObject *command)
{
    PyTypeObject *kind = Py_TYPE(command);
    int is_new = kind == NEWORDER.type;
    /* Only the exact class configured: a subclass could turn an attribute into a property. */
    if ((!is_new && kind != CANCEL.type) || Py_TYPE(core) != CORE_TYPE)
        Py_RETURN_NONE;
    PyObject *key = is_new ? SLOT(command, NEWORDER, NO_key) : SLOT(command, CANCEL, CO_key);
    PyObject *member_id = is_new ? SLOT(command, NEWORDER, NO_member_id) : SLOT(command, CANCEL, CO_member_id);
    if (!key || !member_id || !PyUnicode_CheckExact(key) || !PyUnicode_CheckExact(member_id))
        Py_RETURN_NONE;
    PyObject *result = NULL, *ident = NULL;
    PyObject *acks = get(core, &CORE, MC_acks);
    if (!acks)
        return NULL;
    Py_INCREF(acks);
    if (!PyDict_CheckExact(acks)) {
        result = Py_NewRef(Py_None);
        goto out;
    }
    ident = PyTuple_Pack(2, member_id, key);
    if (!ident)
        goto out;
    PyObject *previous = PyDict_GetItemWithError(acks, ident);
    if (previous) {
        PyObject *events = PyList_New(0);
        if (events) {
            result = make_outcome(previous, events, 0);
            Py_DECREF(events);
        }
        goto out;
    }
    if (PyErr_Occurred())
        goto out;
    Ctx ctx;
    int opened = ctx_open(&ctx, core);
    if (opened < 0)
        goto out;
    if (opened > 0) {
        result = Py_NewRef(Py_None);
        goto out;
    }
    result = is_new ? new_order(&ctx, command, ident) : cancel_order(&ctx, command);
    ctx_close(&ctx);
    if (result && result != Py_None && SLOT(result, OUTCOME, OC_fresh) == Py_True) {
        if (PyDict_SetItem(acks, ident, SLOT(result, OUTCOME, OC_ack)) < 0)
            Py_CLEAR(result);
    }
out:
    Py_XDECREF(ident);
    Py_DECREF(acks);
    return result;
}

/* apply(core, command) -> Outcome: the compiled path, or the reference's apply when the compiled path declines.
 * configure() returns it wrapped as an instance method, so that CompiledCore.apply costs no Python frame. */
static PyObject *apply(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply(core, command)");
        return NULL;
    }
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    PyObject *result = fast_apply(args[0], args[1]);
    if (result != Py_None)
        return result;
    Py_DECREF(result);
    return PyObject_Vectorcall(REFERENCE_APPLY, args, 2, NULL);
}

/* fast_apply(core, command) -> Outcome or None: the compiled path alone (for tests). */
static PyObject *fast_apply_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !configured) {
        PyErr_SetString(PyExc_TypeError, "fast_apply(core, command), once configured");
        return NULL;
    }
    return fast_apply(args[0], args[1]);
}

static int intern(PyObject **where, const char *text)
{
    *where = PyUnicode_InternFromString(text);
    return *where ? 0 : -1;
}

/* configure(classes: dict): the classes of core.py, commands.py and events.py, and collections.deque, heapq's
 * heappush and heappop. Called once when core.py is imported. */
static PyObject *configure(PyObject *module, PyObject *classes)
{
    if (!PyDict_Check(classes)) {
        PyErr_SetString(PyExc_TypeError, "configure(dict)");
        return NULL;
    }
    struct {
        const char *name;
        Cls *cls;
        const char **fields;
    } table[] = {
        {"Order", &ORDER, ORDER_F}, {"Level", &LEVEL, LEVEL_F}, {"BookSide", &BOOK, BOOK_F},
        {"Member", &MEMBER, MEMBER_F}, {"Receipt", &RECEIPT, RECEIPT_F}, {"Product", &PRODUCT, PRODUCT_F},
        {"FeeSchedule", &FEE, FEE_F}, {"NewOrder", &NEWORDER, NEWORDER_F}, {"CancelOrder", &CANCEL, CANCEL_F},
        {"Outcome", &OUTCOME, OUTCOME_F}, {"OrderAccepted", &ACCEPTED, ACCEPTED_F},
        {"OrderCancelled", &CANCELLED, CANCELLED_F}, {"TradeExecuted", &TRADE, TRADE_F},
        {"SettlementInstruction", &SETTLE, SETTLE_F}, {"ReceiptDelivery", &DELIVERY, DELIVERY_F},
        {"ReceiptSplit", &SPLIT, SPLIT_F},
    };
    for (size_t index = 0; index < sizeof table / sizeof table[0]; index++) {
        PyObject *type = PyDict_GetItemString(classes, table[index].name);
        if (!type) {
            PyErr_Format(PyExc_KeyError, "configure: %s missing", table[index].name);
            return NULL;
        }
        if (load_class(table[index].cls, type, table[index].fields) < 0)
            return NULL;
    }
    /* Events are made with their fields in dataclass order; a class with more slots than named here would be
     * left half-filled, so refuse it. */
    Cls *events[] = {&ACCEPTED, &CANCELLED, &TRADE, &SETTLE, &DELIVERY, &SPLIT, &OUTCOME, &RECEIPT, &ORDER, &LEVEL};
    for (size_t index = 0; index < sizeof events / sizeof events[0]; index++) {
        PyObject *slots = PyObject_GetAttrString((PyObject *)events[index]->type, "__slots__");
        if (!slots)
            return NULL;
        Py_ssize_t size = PySequence_Size(slots);
        Py_DECREF(slots);
        if (size != events[index]->count) {
            PyErr_Format(PyExc_TypeError, "%s has %zd slots, the compiled core knows %d",
                         events[index]->type->tp_name, size, events[index]->count);
            return NULL;
        }
    }
    PyObject *ack = PyDict_GetItemString(classes, "Ack");
    PyObject *deque = PyDict_GetItemString(classes, "deque");
    HEAPPUSH = PyDict_GetItemString(classes, "heappush");
    HEAPPOP = PyDict_GetItemString(classes, "heappop");
    if (!ack || !deque || !HEAPPUSH || !HEAPPOP || !PyType_Check(ack) || !PyType_Check(deque) ||
        !PyType_IsSubtype((PyTypeObject *)ack, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure: Ack (a tuple), deque, heappush and heappop are needed");
        return NULL;
    }
    PyObject *rejection = PyDict_GetItemString(classes, "Rejection");
    PyObject *messages = PyDict_GetItemString(classes, "MESSAGES");
    PyObject *unknown = messages && PyDict_Check(messages) ? PyDict_GetItemString(messages, "unknown_order") : NULL;
    if (!rejection || !PyType_Check(rejection) || !PyType_IsSubtype((PyTypeObject *)rejection, &PyTuple_Type) ||
        !unknown || !PyTuple_Check(unknown) || PyTuple_GET_SIZE(unknown) != 2 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(unknown, 0)) || !PyUnicode_Check(PyTuple_GET_ITEM(unknown, 1))) {
        PyErr_SetString(PyExc_TypeError, "configure: Rejection (a tuple) and MESSAGES are needed");
        return NULL;
    }
    REJECTION_TYPE = (PyTypeObject *)Py_NewRef(rejection);
    UNKNOWN_ORDER_ZH = Py_NewRef(PyTuple_GET_ITEM(unknown, 0));
    UNKNOWN_ORDER_EN = Py_NewRef(PyTuple_GET_ITEM(unknown, 1));
    int zh_split = split_template(UNKNOWN_ORDER_ZH, &UNKNOWN_ORDER_PARTS[0], &UNKNOWN_ORDER_PARTS[1]);
    int en_split = split_template(UNKNOWN_ORDER_EN, &UNKNOWN_ORDER_PARTS[2], &UNKNOWN_ORDER_PARTS[3]);
    if (zh_split < 0 || en_split < 0)
        return NULL;
    if (!zh_split || !en_split)
        for (int part = 0; part < 4; part++)
            Py_CLEAR(UNKNOWN_ORDER_PARTS[part]);
    PyObject *core = PyDict_GetItemString(classes, "Core");
    PyObject *reference = PyDict_GetItemString(classes, "reference_apply");
    if (!core || !PyType_Check(core) || !reference || !PyCallable_Check(reference)) {
        PyErr_SetString(PyExc_TypeError, "configure: Core (the class) and reference_apply are needed");
        return NULL;
    }
    if (load_class(&CORE, core, CORE_F) < 0)
        return NULL;
    CORE_TYPE = (PyTypeObject *)Py_NewRef(core);
    REFERENCE_APPLY = Py_NewRef(reference);
    ACK_TYPE = (PyTypeObject *)Py_NewRef(ack);
    DEQUE_TYPE = (PyTypeObject *)Py_NewRef(deque);
    DEQUE_APPEND = PyObject_GetAttr(deque, S_append);
    DEQUE_POPLEFT = PyObject_GetAttr(deque, S_popleft);
    if (!DEQUE_APPEND || !DEQUE_POPLEFT)
        return NULL;
    Py_INCREF(HEAPPUSH);
    Py_INCREF(HEAPPOP);
    configured = 1;
    return PyInstanceMethod_New(APPLY_FUNCTION);
}

static PyMethodDef METHODS[] = {
    {"apply", (PyCFunction)(void (*)(void))apply, METH_FASTCALL,
     "apply(core, command) -> Outcome"},
    {"fast_apply", (PyCFunction)(void (*)(void))fast_apply_py, METH_FASTCALL,
     "fast_apply(core, command) -> Outcome, or None when the Python core must handle the command"},
    {"configure", configure, METH_O, "configure(classes) -> the apply method -- once, from core.py"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_corefast", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__corefast(void)
{
    struct {
        PyObject **where;
        const char *text;
    } names[] = {
        {&S_members, "members"}, {&S_products, "products"}, {&S_receipts, "receipts"}, {&S_orders, "orders"},
        {&S_acks, "acks"}, {&S_sequence, "sequence"}, {&S_trade_count, "trade_count"},
        {&S_centre_fees_fen, "centre_fees_fen"}, {&S_format, "format"}, {&S_order, "order"},
        {&T_unknown_order, "unknown_order"}, {&T_order_id, "order_id"}, {&T_rejected, "rejected"}, {&S_append, "append"}, {&S_popleft, "popleft"}, {&S_pop, "pop"},
        {&T_B, "B"}, {&T_S, "S"}, {&T_limit, "limit"}, {&T_market, "market"}, {&T_IOC, "IOC"}, {&T_FOK, "FOK"},
        {&T_DAY, "DAY"}, {&T_GTC, "GTC"}, {&T_auction, "call_auction"}, {&T_continuous, "continuous"},
        {&T_live, "live"}, {&T_split, "split"}, {&T_done, "done"}, {&T_resting, "resting"}, {&T_filled, "filled"},
        {&T_cancelled, "cancelled"}, {&T_self_trade, "self_trade"}, {&T_client, "client"},
        {&T_ioc_remainder, "ioc_remainder"}, {&T_market_remainder, "market_remainder"},
    };
    for (size_t index = 0; index < sizeof names / sizeof names[0]; index++)
        if (intern(names[index].where, names[index].text) < 0)
            return NULL;
    V_zero = PyLong_FromLong(0);
    V_one = PyLong_FromLong(1);
    V_two = PyLong_FromLong(2);
    T_dot = PyUnicode_InternFromString(".");
    V_999999 = PyLong_FromLong(999999);
    V_million = PyLong_FromLong(1000000);
    V_empty_tuple = PyTuple_New(0);
    KW_order = PyTuple_Pack(1, S_order);
    if (!KW_order)
        return NULL;
    if (!V_zero || !V_one || !V_two || !T_dot || !V_999999 || !V_million || !V_empty_tuple)
        return NULL;
    PyObject *module = PyModule_Create(&MODULE);
    if (!module)
        return NULL;
    APPLY_FUNCTION = PyObject_GetAttrString(module, "apply");
    if (!APPLY_FUNCTION) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
