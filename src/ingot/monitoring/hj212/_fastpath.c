/* The compiled hot path of ingot.monitoring.hj212.codec: the appendix A CRC, and the strict fast path that takes
 * a well-formed HJ 212-2017 upload straight to a Packet.
 *
 * This is not a second decoder. `decode_strict` accepts only packets the codec's general path (codec.py) accepts
 * with no tolerance at all, and it builds exactly the Packet the general path builds; at the first doubt it
 * returns None and the general path decides. It never rejects anything itself, so every reason code, message and
 * tolerance stays in codec.py. The code tables (system codes, command codes, data flags, value suffixes) and the
 * classes it builds come from Python through configure(), so nothing here can drift from codes.py.
 * tests/monitoring/test_hj212_fast_path.py checks the two paths agree.
 *
 * It also formats decoded packets as PostgreSQL COPY text for the sink (see "the sink's COPY text" below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

#define MAX_SEGMENT 1024 /* 6.3.1 table 2 */
#define MAX_CP 950       /* 6.3.2 table 3: from "CP=&&" to the closing "&&" */
#define MAX_ENTRIES 128  /* factors in one CP; more (impossible within 950 characters of a-z00000-Flag=N) bail */
#define MAX_SUFFIXES 32

/* --- CRC (appendix A) -------------------------------------------------------------------------------------------
 * Appendix A: crc = (crc >> 8) ^ byte, then eight rounds of "shift right, XOR 0xA001 if the bit shifted out was
 * 1". After the first step the register is below 256, so the eight rounds are a function of one byte: ROUNDS.
 * CRC-16/MODBUS runs the same rounds but XORs the byte into the whole register without shifting it first.
 *
 * Only the register's high byte carries from one byte to the next: h' = H(h ^ byte) with H(v) = ROUNDS[v] >> 8,
 * starting from h = 0xFF, and the CRC is ROUNDS[h ^ last byte]. H is linear over GF(2) and H^8 is the identity
 * (checked in init_rounds), so the byte d places before the last one adds H^(d mod 8)(byte) to that final index
 * whatever the other bytes are. XOR-ing the segment together eight bytes at a time gathers the bytes of each
 * residue d mod 8 into one byte of a 64-bit word, and eight lookups finish: no chain of dependent lookups, one
 * load per eight bytes. Bit-identical to the appendix's loop (tests/monitoring/test_hj212_codec.py). */

static uint16_t ROUNDS[256];
static uint8_t POWERS[8][256]; /* POWERS[r][v] = H^r(v) */
static int folded_crc_ok;

static void init_rounds(void)
{
    for (unsigned value = 0; value < 256; value++) {
        unsigned register_ = value;
        for (int round = 0; round < 8; round++)
            register_ = (register_ & 1) ? (register_ >> 1) ^ 0xA001 : register_ >> 1;
        ROUNDS[value] = (uint16_t)register_;
    }
    for (unsigned value = 0; value < 256; value++)
        POWERS[0][value] = (uint8_t)value;
    for (int power = 1; power < 8; power++)
        for (unsigned value = 0; value < 256; value++)
            POWERS[power][value] = (uint8_t)(ROUNDS[POWERS[power - 1][value]] >> 8);
    folded_crc_ok = 1;
    for (unsigned value = 0; value < 256; value++)
        if ((ROUNDS[POWERS[7][value]] >> 8) != value)
            folded_crc_ok = 0; /* never: H^8 is the identity; the plain loop below would still be right */
}

/* The CRC of data[0:size]; *bits & 0x80 says whether any byte is not ASCII (the fast path takes ASCII only). */
static inline unsigned crc_and_bits(const unsigned char *data, Py_ssize_t size, unsigned *bits)
{
    if (!folded_crc_ok || size < 16) {
        unsigned crc = 0xFFFF, any = 0;
        for (Py_ssize_t i = 0; i < size; i++) {
            crc = ROUNDS[(crc >> 8) ^ data[i]];
            any |= data[i];
        }
        *bits = any;
        return crc;
    }
    /* residue[r]: XOR of the bytes r places (mod 8) before the last one */
    uint64_t fold = 0, any = 0;
    Py_ssize_t at = size;
    for (; at >= 8; at -= 8) {
        const unsigned char *word = data + at - 8;
        uint64_t value = (uint64_t)word[0] | (uint64_t)word[1] << 8 | (uint64_t)word[2] << 16
                         | (uint64_t)word[3] << 24 | (uint64_t)word[4] << 32 | (uint64_t)word[5] << 40
                         | (uint64_t)word[6] << 48 | (uint64_t)word[7] << 56;
        fold ^= value;
        any |= value;
    }
    unsigned residue[8];
    for (int offset = 0; offset < 8; offset++)
        residue[7 - offset] = (unsigned)(fold >> (8 * offset)) & 0xFF;
    for (Py_ssize_t i = 0; i < at; i++) {
        residue[(size - 1 - i) & 7] ^= data[i];
        any |= data[i];
    }
    *bits = (any & 0x8080808080808080ULL) ? 0x80 : 0;
    unsigned index = POWERS[(size - 1) & 7][0xFF]; /* the initial register's high byte */
    for (int r = 0; r < 8; r++)
        index ^= POWERS[r][residue[r]];
    return ROUNDS[index];
}

static inline unsigned crc_appendix_a(const unsigned char *data, Py_ssize_t size)
{
    unsigned bits;
    return crc_and_bits(data, size, &bits);
}

static inline unsigned crc_modbus_of(const unsigned char *data, Py_ssize_t size)
{
    unsigned crc = 0xFFFF;
    for (Py_ssize_t i = 0; i < size; i++)
        crc = (crc >> 8) ^ ROUNDS[(crc ^ data[i]) & 0xFF];
    return crc;
}

static PyObject *py_crc(PyObject *arg, unsigned (*function)(const unsigned char *, Py_ssize_t))
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    unsigned crc = function((const unsigned char *)view.buf, view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(crc);
}

static PyObject *crc_hj212(PyObject *module, PyObject *arg) { return py_crc(arg, crc_appendix_a); }
static PyObject *crc_modbus(PyObject *module, PyObject *arg) { return py_crc(arg, crc_modbus_of); }

/* --- configuration from codec.py ------------------------------------------------------------------------------- */

static int configured = 0;
static PyTypeObject *packet_type, *pollutant_type;
static PyObject *decimal_type, *tzinfo;
/* the dataclasses' fields, in order: Packet(st, cn, …) and PollutantValues(code, values, …) */
static PyObject *PACKET_FIELDS, *POLLUTANT_FIELDS;
enum { P_ST, P_CN, P_PW, P_MN, P_EDITION, P_VERSION, P_QN, P_FLAG, P_PNUM, P_PNO, P_DATA_TIME, P_PARAMS,
       P_POLLUTANTS, P_TOLERATED, PACKET_FIELD_COUNT };
enum { V_CODE, V_VALUES, V_FLAG, V_EFLAG, V_SAMPLE_TIME, V_TEXTS, V_ORIGINAL_CODE, POLLUTANT_FIELD_COUNT };
static PyObject *pollutant_slots[POLLUTANT_FIELD_COUNT];
static PyObject *system_codes[100];      /* ST value → its key in SYSTEM_CODES */
static PyObject *command_codes[10000];   /* CN value → its key in COMMAND_CODES */
static PyObject *data_flags[128];        /* one-letter flag → its key in DATA_FLAGS */
static struct { const char *text; Py_ssize_t size; PyObject *key; } suffixes[MAX_SUFFIXES];
static int suffix_count;
static PyObject *edition_2017, *empty_tuple;

#define IS_DIGIT(c) ((unsigned)((c) - '0') < 10u)
#define IS_LOWER(c) ((unsigned)((c) - 'a') < 26u)
#define IS_ALPHA(c) (IS_LOWER(c) || (unsigned)((c) - 'A') < 26u)
#define IS_ALNUM(c) (IS_DIGIT(c) || IS_ALPHA(c))
#define IS_UPPER_HEX(c) (IS_DIGIT(c) || (unsigned)((c) - 'A') < 6u)

static int all_digits(const unsigned char *text, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++)
        if (!IS_DIGIT(text[i]))
            return 0;
    return 1;
}

static long digits_value(const unsigned char *text, Py_ssize_t size)
{
    long value = 0;
    for (Py_ssize_t i = 0; i < size; i++)
        value = value * 10 + (text[i] - '0');
    return value;
}

static void clear_tables(void)
{
    Py_CLEAR(packet_type);
    Py_CLEAR(pollutant_type);
    for (int i = 0; i < POLLUTANT_FIELD_COUNT; i++)
        Py_CLEAR(pollutant_slots[i]);
    Py_CLEAR(decimal_type);
    Py_CLEAR(tzinfo);
    for (int i = 0; i < 100; i++)
        Py_CLEAR(system_codes[i]);
    for (int i = 0; i < 10000; i++)
        Py_CLEAR(command_codes[i]);
    for (int i = 0; i < 128; i++)
        Py_CLEAR(data_flags[i]);
    for (int i = 0; i < suffix_count; i++)
        Py_CLEAR(suffixes[i].key);
    suffix_count = 0;
    configured = 0;
}

/* Fill `table` from the str keys of `codes` that are `width` ASCII digits; other keys cannot occur on the fast
 * path (its header checks only let `width` digits through). */
static int fill_digit_table(PyObject *codes, PyObject **table, Py_ssize_t width)
{
    PyObject *iterator = PyObject_GetIter(codes), *key;
    if (iterator == NULL)
        return -1;
    while ((key = PyIter_Next(iterator)) != NULL) {
        Py_ssize_t size;
        const char *text = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &size) : NULL;
        if (text != NULL && size == width && all_digits((const unsigned char *)text, size)) {
            long value = digits_value((const unsigned char *)text, size);
            Py_XSETREF(table[value], key);
        } else {
            PyErr_Clear();
            Py_DECREF(key);
        }
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *configure(PyObject *module, PyObject *args)
{
    PyObject *packet, *packet_fields, *pollutant, *pollutant_fields, *decimal, *zone, *systems, *commands, *flags,
        *numeric, *iterator, *key;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!OOOOO:configure", &PyType_Type, &packet, &PyTuple_Type, &packet_fields,
                          &PyType_Type, &pollutant, &PyTuple_Type, &pollutant_fields, &PyType_Type, &decimal, &zone,
                          &systems, &commands, &flags, &numeric))
        return NULL;
    /* The objects are built field by field (calling the dataclasses' __init__ with keywords cost more than all the
     * parsing): the classes must have exactly the fields this file fills. */
    int same = PyObject_RichCompareBool(packet_fields, PACKET_FIELDS, Py_EQ);
    if (same == 1)
        same = PyObject_RichCompareBool(pollutant_fields, POLLUTANT_FIELDS, Py_EQ);
    if (same < 0)
        return NULL;
    if (same && (PyObject_HasAttrString(packet, "__post_init__") || PyObject_HasAttrString(pollutant, "__post_init__")))
        same = 0;
    if (!same) {
        PyErr_SetString(PyExc_ValueError, "Packet or PollutantValues fields differ from the ones _fastpath.c fills "
                                          "(or they gained a __post_init__); update decode_strict");
        return NULL;
    }
    clear_tables();
    packet_type = (PyTypeObject *)Py_NewRef(packet);
    pollutant_type = (PyTypeObject *)Py_NewRef(pollutant);
    for (int k = 0; k < POLLUTANT_FIELD_COUNT; k++) {
        /* __slots__ members: their descriptors set the slots */
        pollutant_slots[k] = PyObject_GetAttr(pollutant, PyTuple_GET_ITEM(POLLUTANT_FIELDS, k));
        if (pollutant_slots[k] == NULL)
            goto failed;
        if (Py_TYPE(pollutant_slots[k])->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_TypeError, "PollutantValues must be a dataclass with slots");
            goto failed;
        }
    }
    if (((PyTypeObject *)packet)->tp_dictoffset == 0) {
        PyErr_SetString(PyExc_TypeError, "Packet must keep its fields in an instance dict");
        goto failed;
    }
    decimal_type = Py_NewRef(decimal);
    tzinfo = Py_NewRef(zone);
    if (fill_digit_table(systems, system_codes, 2) < 0 || fill_digit_table(commands, command_codes, 4) < 0)
        goto failed;

    iterator = PyObject_GetIter(flags);
    if (iterator == NULL)
        goto failed;
    while ((key = PyIter_Next(iterator)) != NULL) {
        Py_ssize_t size;
        const char *text = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &size) : NULL;
        if (text == NULL || size != 1 || (unsigned char)text[0] >= 128) {
            Py_DECREF(key);
            Py_DECREF(iterator);
            PyErr_SetString(PyExc_ValueError, "data flags must be single ASCII letters");
            goto failed;
        }
        Py_XSETREF(data_flags[(unsigned char)text[0]], key);
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred())
        goto failed;

    iterator = PyObject_GetIter(numeric);
    if (iterator == NULL)
        goto failed;
    while ((key = PyIter_Next(iterator)) != NULL) {
        Py_ssize_t size;
        const char *text = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &size) : NULL;
        if (text == NULL || suffix_count == MAX_SUFFIXES) {
            Py_DECREF(key);
            Py_DECREF(iterator);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "too many numeric suffixes, or one is not a str");
            goto failed;
        }
        suffixes[suffix_count].text = text; /* kept alive by the key */
        suffixes[suffix_count].size = size;
        suffixes[suffix_count].key = key;
        suffix_count++;
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred())
        goto failed;
    configured = 1;
    Py_RETURN_NONE;

failed:
    clear_tables();
    return NULL;
}

/* --- the strict fast path -------------------------------------------------------------------------------------- */

static PyObject *ascii_text(const unsigned char *text, Py_ssize_t size)
{
    PyObject *result = PyUnicode_New(size, 127);
    if (result != NULL)
        memcpy(PyUnicode_DATA(result), text, size);
    return result;
}

/* YYYYMMDDhhmmss as datetime() takes it: a date that exists, hour < 24, minute and second < 60. */
static int valid_time14(const unsigned char *text, int *parts)
{
    if (!all_digits(text, 14))
        return 0;
    int year = (int)digits_value(text, 4), month = (int)digits_value(text + 4, 2), day = (int)digits_value(text + 6, 2);
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > month_days[month - 1] + (month == 2 && leap))
        return 0;
    int hour = (int)digits_value(text + 8, 2), minute = (int)digits_value(text + 10, 2);
    int second = (int)digits_value(text + 12, 2);
    if (hour > 23 || minute > 59 || second > 59)
        return 0;
    if (parts != NULL) {
        parts[0] = year, parts[1] = month, parts[2] = day, parts[3] = hour, parts[4] = minute, parts[5] = second;
    }
    return 1;
}

/* The general path's number: an optional sign, then digits with at most one decimal point and at least one digit;
 * at most 18 characters. */
static int valid_number(const unsigned char *text, Py_ssize_t size)
{
    if (size < 1 || size > 18)
        return 0;
    Py_ssize_t i = (text[0] == '-' || text[0] == '+') ? 1 : 0;
    int digits = 0, points = 0;
    for (; i < size; i++) {
        if (IS_DIGIT(text[i]))
            digits++;
        else if (text[i] == '.' && !points)
            points++;
        else
            return 0;
    }
    return digits > 0;
}

/* Matches `literal` at text[*at] and moves past it. */
static inline int expect(const unsigned char *text, Py_ssize_t size, Py_ssize_t *at, const char *literal,
                         Py_ssize_t length)
{
    if (*at + length > size || memcmp(text + *at, literal, length) != 0)
        return 0;
    *at += length;
    return 1;
}

enum character_class { DIGITS, ALNUM, UPPER_HEX };

/* A header value: 1 to `most` characters of a class, then ';'. Returns the count, 0 when it does not match. */
static inline Py_ssize_t field(const unsigned char *text, Py_ssize_t size, Py_ssize_t *at, enum character_class class_,
                               Py_ssize_t most)
{
    Py_ssize_t start = *at, i = start;
    while (i < size && i - start <= most
           && (class_ == DIGITS ? IS_DIGIT(text[i]) : class_ == ALNUM ? IS_ALNUM(text[i]) : IS_UPPER_HEX(text[i])))
        i++;
    Py_ssize_t count = i - start;
    if (count < 1 || count > most || i >= size || text[i] != ';')
        return 0;
    *at = i + 1;
    return count;
}

/* PollutantValues(code, values, flag) with its other fields at their defaults (texts a new dict). */
static PyObject *new_pollutant(PyObject *code, PyObject *values, PyObject *flag)
{
    PyObject *texts = PyDict_New();
    if (texts == NULL)
        return NULL;
    PyObject *fields[POLLUTANT_FIELD_COUNT] = {code, values, flag, Py_None, Py_None, texts, Py_None};
    PyObject *entry = pollutant_type->tp_alloc(pollutant_type, 0);
    for (int k = 0; entry != NULL && k < POLLUTANT_FIELD_COUNT; k++)
        if (Py_TYPE(pollutant_slots[k])->tp_descr_set(pollutant_slots[k], entry, fields[k]) < 0)
            Py_CLEAR(entry);
    Py_DECREF(texts);
    return entry;
}

/* Packet(...) from its fields in order, into the instance dict as dataclass __init__ would put them. */
static PyObject *new_packet(PyObject **fields)
{
    PyObject *packet = packet_type->tp_alloc(packet_type, 0);
    for (int k = 0; packet != NULL && k < PACKET_FIELD_COUNT; k++)
        if (PyObject_GenericSetAttr(packet, PyTuple_GET_ITEM(PACKET_FIELDS, k), fields[k]) < 0)
            Py_CLEAR(packet);
    return packet;
}

/* Decimal(text), as the general path calls it: Decimal's own constructor, called without the generic call
 * machinery (type_call, a new argument tuple each time); exact whatever the thread's decimal context. */
static PyObject *decimal_arguments; /* a 1-tuple reused while nobody else holds it */

static PyObject *new_decimal(const unsigned char *text, Py_ssize_t size)
{
    PyObject *value = ascii_text(text, size);
    if (value == NULL)
        return NULL;
    if (decimal_arguments == NULL || Py_REFCNT(decimal_arguments) != 1) {
        Py_XDECREF(decimal_arguments);
        if ((decimal_arguments = PyTuple_New(1)) == NULL) {
            Py_DECREF(value);
            return NULL;
        }
    } else {
        Py_DECREF(PyTuple_GET_ITEM(decimal_arguments, 0));
    }
    PyTuple_SET_ITEM(decimal_arguments, 0, value); /* the tuple owns the text until the next call */
    return ((PyTypeObject *)decimal_type)->tp_new((PyTypeObject *)decimal_type, decimal_arguments, NULL);
}

typedef struct {
    const unsigned char *code; /* six bytes inside the packet */
    PyObject *values;          /* dict suffix → Decimal */
    PyObject *flag;            /* borrowed from data_flags, or NULL */
} Entry;

#define BAIL goto bail
#define CHECK(expression) do { if ((expression) == NULL) goto error; } while (0)

static PyObject *decode_strict(PyObject *module, PyObject *arg)
{
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "ingot.monitoring.hj212._fastpath is not configured");
        return NULL;
    }
    if (!PyBytes_CheckExact(arg))
        Py_RETURN_NONE;
    const unsigned char *packet = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t end = PyBytes_GET_SIZE(arg);
    if (end >= 2 && packet[end - 2] == '\r' && packet[end - 1] == '\n')
        end -= 2;
    if (end > MAX_SEGMENT + 10 || end < 10 || packet[0] != '#' || packet[1] != '#' || !all_digits(packet + 2, 4)
        || digits_value(packet + 2, 4) != end - 10)
        Py_RETURN_NONE;
    const unsigned char *segment = packet + 6;
    Py_ssize_t size = end - 10;
    /* ASCII only: then the segment is valid UTF-8 and its length in characters is its length in bytes. A packet
     * with other text (e.g. a Chinese Info value) goes to the general path. */
    unsigned bits, crc = crc_and_bits(segment, size, &bits);
    if (bits & 0x80)
        Py_RETURN_NONE;
    static const char HEX[] = "0123456789ABCDEF";
    const unsigned char *sent = packet + end - 4;
    if (sent[0] != HEX[crc >> 12] || sent[1] != HEX[(crc >> 8) & 15] || sent[2] != HEX[(crc >> 4) & 15]
        || sent[3] != HEX[crc & 15])
        Py_RETURN_NONE;

    /* QN=17 digits;ST=2 digits;CN=4 digits;PW=1–6 letters/digits;MN=24 upper hex;Flag=1–3 digits;
     * [PNUM=1–4 digits;PNO=1–4 digits;]CP=&& — the standard's order, nothing left out */
    Py_ssize_t at = 0, qn_at, st_at, cn_at, pw_at, pw_size, mn_at, flag_at, flag_size, pnum_at = 0, pnum_size = 0,
               pno_at = 0, pno_size = 0;
    if (!expect(segment, size, &at, "QN=", 3) || (qn_at = at, field(segment, size, &at, DIGITS, 17)) != 17
        || !expect(segment, size, &at, "ST=", 3) || (st_at = at, field(segment, size, &at, DIGITS, 2)) != 2
        || !expect(segment, size, &at, "CN=", 3) || (cn_at = at, field(segment, size, &at, DIGITS, 4)) != 4
        || !expect(segment, size, &at, "PW=", 3) || (pw_at = at, pw_size = field(segment, size, &at, ALNUM, 6)) == 0
        || !expect(segment, size, &at, "MN=", 3) || (mn_at = at, field(segment, size, &at, UPPER_HEX, 24)) != 24
        || !expect(segment, size, &at, "Flag=", 5)
        || (flag_at = at, flag_size = field(segment, size, &at, DIGITS, 3)) == 0)
        Py_RETURN_NONE;
    if (expect(segment, size, &at, "PNUM=", 5)) {
        pnum_at = at;
        if ((pnum_size = field(segment, size, &at, DIGITS, 4)) == 0 || !expect(segment, size, &at, "PNO=", 4))
            Py_RETURN_NONE;
        pno_at = at;
        if ((pno_size = field(segment, size, &at, DIGITS, 4)) == 0)
            Py_RETURN_NONE;
    }
    if (!expect(segment, size, &at, "CP=&&", 5))
        Py_RETURN_NONE;
    Py_ssize_t cp_start = at;
    if (size < cp_start + 2 || segment[size - 2] != '&' || segment[size - 1] != '&' || size - cp_start + 5 > MAX_CP)
        Py_RETURN_NONE;
    long flag = digits_value(segment + flag_at, flag_size), version = flag >> 2;
    PyObject *st = system_codes[digits_value(segment + st_at, 2)];
    PyObject *cn = command_codes[digits_value(segment + cn_at, 4)];
    if (flag > 255 || version < 1 || version > 2 || st == NULL || cn == NULL)
        Py_RETURN_NONE; /* the older edition, an unsupported version, a reserved or unknown code */
    long pnum = 0, pno = 0;
    if (pnum_size) {
        pnum = digits_value(segment + pnum_at, pnum_size), pno = digits_value(segment + pno_at, pno_size);
        if (!(flag & 2) || pno < 1 || pno > pnum)
            Py_RETURN_NONE;
    } else if (flag & 2) {
        Py_RETURN_NONE;
    }
    if (!valid_time14(segment + qn_at, NULL))
        Py_RETURN_NONE;

    /* CP: items name=value separated by ';' or ','; each item exactly one '=' */
    Entry entries[MAX_ENTRIES];
    int entry_count = 0;
    PyObject *params = NULL, *pollutants = NULL, *data_time = NULL, *result = NULL;
    PyObject *key = NULL, *value = NULL, *code = NULL, *pollutant = NULL;
    PyObject *qn = NULL, *pw = NULL, *mn = NULL, *version_object = NULL, *flag_object = NULL, *pnum_object = NULL,
             *pno_object = NULL;
    CHECK(params = PyDict_New());
    const unsigned char *cp = segment + cp_start;
    Py_ssize_t cp_size = size - cp_start - 2, i = 0;
    Entry *last = NULL;
    while (cp_size) {
        Py_ssize_t start = i, equals = -1;
        for (; i < cp_size && cp[i] != ';' && cp[i] != ','; i++) {
            if (cp[i] == '=') {
                if (equals >= 0)
                    BAIL;
                equals = i;
            }
        }
        if (equals < 0)
            BAIL; /* an item without '=', or an empty one */
        const unsigned char *name = cp + start, *text = cp + equals + 1;
        Py_ssize_t name_size = equals - start, text_size = i - equals - 1;
        const unsigned char *dash = memchr(name, '-', name_size);
        if (dash != NULL) {
            /* a factor: appendix B code (a lower-case letter and five digits), then a value suffix or Flag */
            if (dash - name != 6 || !IS_LOWER(name[0]) || !all_digits(name + 1, 5))
                BAIL;
            const char *suffix = (const char *)dash + 1;
            Py_ssize_t suffix_size = name_size - 7;
            Entry *entry = NULL;
            if (last != NULL && memcmp(last->code, name, 6) == 0) {
                entry = last;
            } else {
                for (int k = 0; k < entry_count; k++)
                    if (memcmp(entries[k].code, name, 6) == 0) {
                        entry = &entries[k];
                        break;
                    }
                if (entry == NULL) {
                    if (entry_count == MAX_ENTRIES)
                        BAIL;
                    PyObject *values = PyDict_New();
                    CHECK(values);
                    entry = &entries[entry_count++];
                    entry->code = name, entry->values = values, entry->flag = NULL;
                }
                last = entry;
            }
            if (suffix_size == 4 && memcmp(suffix, "Flag", 4) == 0) {
                if (text_size != 1 || text[0] >= 128 || data_flags[text[0]] == NULL || entry->flag != NULL)
                    BAIL;
                entry->flag = data_flags[text[0]];
            } else {
                PyObject *suffix_key = NULL;
                for (int k = 0; k < suffix_count; k++)
                    if (suffixes[k].size == suffix_size && suffixes[k].text[0] == suffix[0]
                        && memcmp(suffixes[k].text, suffix, suffix_size) == 0) {
                        suffix_key = suffixes[k].key;
                        break;
                    }
                if (suffix_key == NULL || !valid_number(text, text_size))
                    BAIL;
                int present = PyDict_Contains(entry->values, suffix_key);
                if (present < 0)
                    goto error;
                if (present)
                    BAIL;
                PyObject *number = new_decimal(text, text_size);
                CHECK(number);
                int failed = PyDict_SetItem(entry->values, suffix_key, number);
                Py_DECREF(number);
                if (failed < 0)
                    goto error;
            }
        } else {
            /* a parameter named by letters and digits, e.g. DataTime or RtdInterval; a bare Flag is a tolerance */
            if (name_size < 1 || !IS_ALPHA(name[0]) || (name_size == 4 && memcmp(name, "Flag", 4) == 0))
                BAIL;
            for (Py_ssize_t k = 1; k < name_size; k++)
                if (!IS_ALNUM(name[k]))
                    BAIL;
            CHECK(key = ascii_text(name, name_size));
            int present = PyDict_Contains(params, key);
            if (present < 0)
                goto error;
            if (present)
                BAIL;
            if (name_size == 8 && memcmp(name, "DataTime", 8) == 0) {
                int parts[6];
                if (text_size != 14 || !valid_time14(text, parts))
                    BAIL; /* including DataTime with milliseconds, a tolerance */
                CHECK(data_time = PyDateTimeAPI->DateTime_FromDateAndTime(
                          parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], 0, tzinfo,
                          PyDateTimeAPI->DateTimeType));
            }
            CHECK(value = ascii_text(text, text_size));
            if (PyDict_SetItem(params, key, value) < 0)
                goto error;
            Py_CLEAR(key);
            Py_CLEAR(value);
        }
        if (i == cp_size)
            break;
        i++; /* past the separator; a trailing one leaves an empty item, which bails above */
    }

    CHECK(pollutants = PyDict_New());
    for (int k = 0; k < entry_count; k++) {
        CHECK(code = ascii_text(entries[k].code, 6));
        CHECK(pollutant = new_pollutant(code, entries[k].values, entries[k].flag ? entries[k].flag : Py_None));
        if (PyDict_SetItem(pollutants, code, pollutant) < 0)
            goto error;
        Py_CLEAR(code);
        Py_CLEAR(pollutant);
    }
    CHECK(qn = ascii_text(segment + qn_at, 17));
    CHECK(pw = ascii_text(segment + pw_at, pw_size));
    CHECK(mn = ascii_text(segment + mn_at, 24));
    CHECK(version_object = PyLong_FromLong(version));
    CHECK(flag_object = PyLong_FromLong(flag));
    if (pnum_size) {
        CHECK(pnum_object = PyLong_FromLong(pnum));
        CHECK(pno_object = PyLong_FromLong(pno));
    }
    {
        PyObject *fields[PACKET_FIELD_COUNT] = {
            st, cn, pw, mn, edition_2017, version_object, qn, flag_object, pnum_object ? pnum_object : Py_None,
            pno_object ? pno_object : Py_None, data_time ? data_time : Py_None, params, pollutants, empty_tuple};
        result = new_packet(fields);
    }
    goto done;

bail:
    result = Py_NewRef(Py_None);
    goto done;
error:
    result = NULL;
done:
    for (int k = 0; k < entry_count; k++)
        Py_DECREF(entries[k].values);
    Py_XDECREF(params);
    Py_XDECREF(pollutants);
    Py_XDECREF(data_time);
    Py_XDECREF(key);
    Py_XDECREF(value);
    Py_XDECREF(code);
    Py_XDECREF(pollutant);
    Py_XDECREF(qn);
    Py_XDECREF(pw);
    Py_XDECREF(mn);
    Py_XDECREF(version_object);
    Py_XDECREF(flag_object);
    Py_XDECREF(pnum_object);
    Py_XDECREF(pno_object);
    return result;
}

/* --- the sink's COPY text ---------------------------------------------------------------------------------------
 * ingot.monitoring.storage writes the receiver's packets to PostgreSQL with COPY in text format. Formatting them in
 * Python (storage._received_lines) cost ≈ 15 µs a nine-factor packet, as much as decoding it; these two functions
 * do the same formatting in C. Either one answers None for anything it does not handle exactly (a string that is not
 * one byte per character, a value of another type), and the caller formats that in Python, so the text stored is the
 * same whichever path made it (tests/monitoring/test_hj212_compiled.py compares them). */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Buffer;

static int buffer_grow(Buffer *buffer, Py_ssize_t more)
{
    if (buffer->size + more <= buffer->capacity)
        return 0;
    Py_ssize_t capacity = buffer->capacity ? buffer->capacity : 1024;
    while (capacity < buffer->size + more)
        capacity *= 2;
    char *data = PyMem_Realloc(buffer->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buffer->data = data, buffer->capacity = capacity;
    return 0;
}

static inline int buffer_add(Buffer *buffer, const char *text, Py_ssize_t size)
{
    if (buffer_grow(buffer, size) < 0)
        return -1;
    memcpy(buffer->data + buffer->size, text, size);
    buffer->size += size;
    return 0;
}

/* An ASCII str with none of COPY's special characters (backslash, tab, CR, LF) nor NUL: it goes in as it is. */
static inline int plain_copy_text(PyObject *text)
{
    if (!PyUnicode_Check(text) || !PyUnicode_IS_ASCII(text))
        return 0;
    const unsigned char *data = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0, size = PyUnicode_GET_LENGTH(text); i < size; i++)
        if (data[i] == '\\' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r' || data[i] == 0)
            return 0;
    return 1;
}

static inline int buffer_add_text(Buffer *buffer, PyObject *text)
{
    return buffer_add(buffer, (const char *)PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text));
}

/* copy_escape(text): the field as COPY's text format writes it (backslash, tab, CR and LF escaped, NUL dropped),
 * for a str of one byte per character; None for wider strings. */
static PyObject *copy_escape(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text) || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND)
        Py_RETURN_NONE;
    const unsigned char *data = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text), extra = 0, dropped = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = data[i];
        if (c == '\\' || c == '\t' || c == '\n' || c == '\r')
            extra++;
        else if (c == 0)
            dropped++;
    }
    if (!extra && !dropped)
        return Py_NewRef(text);
    PyObject *result = PyUnicode_New(size + extra - dropped, PyUnicode_IS_ASCII(text) ? 127 : 255);
    if (result == NULL)
        return NULL;
    unsigned char *out = PyUnicode_1BYTE_DATA(result);
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = data[i];
        switch (c) {
        case '\\': *out++ = '\\', *out++ = '\\'; break;
        case '\t': *out++ = '\\', *out++ = 't'; break;
        case '\n': *out++ = '\\', *out++ = 'n'; break;
        case '\r': *out++ = '\\', *out++ = 'r'; break;
        case 0: break;
        default: *out++ = c;
        }
    }
    return result;
}

#define MAX_COLUMNS 16

/* measurement_lines(pollutants, head, tail, stamp, columns, width): the COPY lines of a decoded packet's factors,
 * joined by LF (no final one), as storage._received_lines writes them: per PollutantValues that has at least one
 * value whose suffix `columns` maps to a column (0 ≤ column < width), head + code + tail + the width columns (the
 * values' str, \N where none) + TAB + flag (\N when None or empty) + TAB + stamp. None when something is not plain ASCII text
 * or not a PollutantValues; then the caller formats the packet itself. */
static PyObject *measurement_lines(PyObject *module, PyObject *args)
{
    PyObject *pollutants, *head, *tail, *stamp, *columns;
    int width;
    if (!PyArg_ParseTuple(args, "O!UUUO!i", &PyDict_Type, &pollutants, &head, &tail, &stamp, &PyDict_Type, &columns,
                          &width))
        return NULL;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "ingot.monitoring.hj212._fastpath is not configured");
        return NULL;
    }
    if (width < 1 || width > MAX_COLUMNS) {
        PyErr_SetString(PyExc_ValueError, "width must be between 1 and 16");
        return NULL;
    }
    /* head and tail are already COPY text (their TABs are the separators): they need only be ASCII */
    if (!PyUnicode_IS_ASCII(head) || !PyUnicode_IS_ASCII(tail) || !plain_copy_text(stamp))
        Py_RETURN_NONE;
    Buffer buffer = {NULL, 0, 0};
    PyObject *texts[MAX_COLUMNS] = {NULL};
    PyObject *result = NULL, *code = NULL, *values = NULL, *flag = NULL;
    Py_ssize_t position = 0;
    PyObject *name, *entry;
    while (PyDict_Next(pollutants, &position, &name, &entry)) {
        if (Py_TYPE(entry) != pollutant_type)
            goto unhandled;
        PyObject *slots[3] = {pollutant_slots[V_CODE], pollutant_slots[V_VALUES], pollutant_slots[V_FLAG]};
        PyObject **targets[3] = {&code, &values, &flag};
        for (int k = 0; k < 3; k++) {
            descrgetfunc get_slot = Py_TYPE(slots[k])->tp_descr_get;
            if (get_slot == NULL || (*targets[k] = get_slot(slots[k], entry, (PyObject *)pollutant_type)) == NULL)
                goto error;
        }
        if (!PyDict_Check(values) || !plain_copy_text(code) || (flag != Py_None && !plain_copy_text(flag)))
            goto unhandled;
        int any = 0;
        Py_ssize_t value_position = 0;
        PyObject *suffix, *value;
        while (PyDict_Next(values, &value_position, &suffix, &value)) {
            PyObject *column_object = PyDict_GetItemWithError(columns, suffix);
            if (column_object == NULL) {
                if (PyErr_Occurred())
                    goto error;
                continue;
            }
            long column = PyLong_AsLong(column_object);
            if (column == -1 && PyErr_Occurred())
                goto error;
            if (column < 0 || column >= width)
                continue;
            PyObject *text = PyObject_Str(value);
            if (text == NULL)
                goto error;
            Py_XSETREF(texts[column], text);
            if (!plain_copy_text(text))
                goto unhandled;
            any = 1;
        }
        if (any) {
            if (buffer.size && buffer_add(&buffer, "\n", 1) < 0)
                goto error;
            if (buffer_add_text(&buffer, head) < 0 || buffer_add_text(&buffer, code) < 0
                || buffer_add_text(&buffer, tail) < 0)
                goto error;
            for (int k = 0; k < width; k++) {
                if ((k && buffer_add(&buffer, "\t", 1) < 0)
                    || (texts[k] ? buffer_add_text(&buffer, texts[k]) : buffer_add(&buffer, "\\N", 2)) < 0)
                    goto error;
                Py_CLEAR(texts[k]);
            }
            if (buffer_add(&buffer, "\t", 1) < 0
                || (flag != Py_None && PyUnicode_GET_LENGTH(flag) ? buffer_add_text(&buffer, flag)
                                                                   : buffer_add(&buffer, "\\N", 2)) < 0
                || buffer_add(&buffer, "\t", 1) < 0 || buffer_add_text(&buffer, stamp) < 0)
                goto error;
        }
        Py_CLEAR(code);
        Py_CLEAR(values);
        Py_CLEAR(flag);
    }
    result = PyUnicode_New(buffer.size, 127);
    if (result != NULL && buffer.size)
        memcpy(PyUnicode_1BYTE_DATA(result), buffer.data, buffer.size);
    goto done;
unhandled:
    result = Py_NewRef(Py_None);
    goto done;
error:
    result = NULL;
done:
    for (int k = 0; k < MAX_COLUMNS; k++)
        Py_XDECREF(texts[k]);
    Py_XDECREF(code);
    Py_XDECREF(values);
    Py_XDECREF(flag);
    PyMem_Free(buffer.data);
    return result;
}

/* --- module ---------------------------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"crc_hj212", crc_hj212, METH_O, "Appendix A's CRC of a bytes-like data segment."},
    {"crc_modbus", crc_modbus, METH_O, "CRC-16/MODBUS of a bytes-like object (for the modbus_crc tolerance)."},
    {"configure", configure, METH_VARARGS,
     "configure(Packet, its field names, PollutantValues, its field names, Decimal, tzinfo, system_codes, "
     "command_codes, data_flags, numeric_suffixes)"},
    {"decode_strict", decode_strict, METH_O,
     "The Packet of a strictly well-formed 2017 packet (bytes), or None: then the general path decides."},
    {"copy_escape", copy_escape, METH_O,
     "A str field in COPY's text format (backslash, tab, CR, LF escaped; NUL dropped), or None for a wide str."},
    {"measurement_lines", measurement_lines, METH_VARARGS,
     "measurement_lines(pollutants, head, tail, stamp, columns, width): a decoded packet's COPY lines, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "ingot.monitoring.hj212._fastpath",
    "The compiled hot path of ingot.monitoring.hj212.codec (see codec.py).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    init_rounds();
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    PACKET_FIELDS = Py_BuildValue("(ssssssssssssss)", "st", "cn", "pw", "mn", "edition", "version", "qn", "flag",
                                  "pnum", "pno", "data_time", "params", "pollutants", "tolerated");
    POLLUTANT_FIELDS = Py_BuildValue("(sssssss)", "code", "values", "flag", "eflag", "sample_time", "texts",
                                     "original_code");
    edition_2017 = PyUnicode_InternFromString("2017");
    empty_tuple = PyTuple_New(0);
    if (PACKET_FIELDS == NULL || POLLUTANT_FIELDS == NULL || edition_2017 == NULL || empty_tuple == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(PACKET_FIELDS); k++)
        PyUnicode_InternInPlace(&PyTuple_GET_ITEM(PACKET_FIELDS, k));
    return PyModule_Create(&module_definition);
}
