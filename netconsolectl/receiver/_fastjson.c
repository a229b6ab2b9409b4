/*
 * The common case of netconsolectl.receiver.fastpath in C: optional, built when a compiler is
 * there. fastpath.py holds the same loop in Python and uses it when this module is missing;
 * both write the same bytes (tests/unit/test_receiver_output.py checks each against the
 * general path).
 *
 * common(payloads, keys, start, sources, states, prio, crashing, received, parts, move_to_end)
 *     -> (next, messages, size)
 *
 * Handles payloads[start:] in order while each one is a single-datagram extended message of
 * the common shape (what fastpath.COMMON matches, in sequence, from a known source without an
 * open crash report) and stops at the first one that is not, returning its index: the caller
 * takes that one through its own loop and calls again after it. Nothing is changed for the
 * message it stops at. The JSON lines of the messages handled are appended to ``parts`` as
 * one bytes object of ``size`` bytes.
 *
 *   sources   dict: address key -> (source, b'{"type":"message","host":..,"received":"')
 *   states    the tracker's OrderedDict: source -> State (last_seq, last_ts, counter,
 *             use_msgid, idb)
 *   prio      tuple of 256: b',"facility":F,"level":L,"seq":' or None (general path)
 *   crashing  dict of sources with an open crash report
 *   received  the receive time, b"2026-01-02T03:04:05.678901Z"
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *s_last_seq, *s_last_ts, *s_counter, *s_use_msgid, *s_idb;

static const char NO_RELEASE[] = "\",\"release\":null";
static const char RELEASE_OPEN[] = "\",\"release\":\"";
static const char TS[] = ",\"ts_usec\":";
static const char CONT_FALSE[] = ",\"cont\":false,\"text\":\"";
static const char CONT_TRUE[] = ",\"cont\":true,\"text\":\"";
static const char TAIL[] = "\",\"fields\":{},\"incomplete\":false,\"id\":\"";
static const char END[] = "\"}\n";

/* Text bytes copied into a JSON string as they are: printable ASCII without '"' and '\'. */
static inline int safe_text(unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

/* Release bytes (fastpath._RELEASE): printable ASCII without space , ; " and backslash. */
static inline int release_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != ',' && c != ';' && c != '"' && c != '\\';
}

/* A canonical decimal (0, or no leading zero, at most 20 digits) followed by ','.
 * Returns the position after the comma, or NULL; *v is the value, *over set when it does not
 * fit 64 bits (the caller leaves such a message to Python). */
static const unsigned char *number(const unsigned char *p, const unsigned char *end,
                                   uint64_t *v, int *over)
{
    const unsigned char *start = p;
    uint64_t x = 0;
    if (p >= end || *p < '0' || *p > '9')
        return NULL;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9' && p - start < 20) {
            unsigned d = (unsigned)(*p - '0');
            if (x > (UINT64_MAX - d) / 10)
                *over = 1;
            x = x * 10 + d;
            p++;
        }
    }
    if (p >= end || *p != ',')
        return NULL;
    *v = x;
    return p + 1;
}

struct parsed {
    const unsigned char *rel, *seq, *ts, *text;
    Py_ssize_t rel_len, seq_len, ts_len, text_len;
    unsigned prio;
    int cont;
    uint64_t seq_v, ts_v;
};

/* prio,seq,ts_usec,flag;text\n from p to end (the part after an optional release). */
static int parse_rest(const unsigned char *p, const unsigned char *end, struct parsed *m)
{
    const unsigned char *q = p;
    unsigned prio = 0;
    int over = 0;
    while (q < end && *q >= '0' && *q <= '9' && q - p < 3)
        prio = prio * 10 + (unsigned)(*q++ - '0');
    if (q == p || q >= end || *q != ',')
        return 0;
    /* fastpath's table is keyed by the canonical spelling: "06" is not a key */
    if ((q - p > 1 && *p == '0') || prio > 255)
        return 0;
    m->prio = prio;
    q++;
    m->seq = q;
    q = number(q, end, &m->seq_v, &over);
    if (q == NULL)
        return 0;
    m->seq_len = q - 1 - m->seq;
    m->ts = q;
    q = number(q, end, &m->ts_v, &over);
    if (q == NULL || over)
        return 0;
    m->ts_len = q - 1 - m->ts;
    if (end - q < 3 || (q[0] != '-' && q[0] != 'c') || q[1] != ';')
        return 0;
    m->cont = q[0] == 'c';
    q += 2;
    if (end[-1] != '\n' || q > end - 1)
        return 0;
    m->text = q;
    m->text_len = end - 1 - q;
    for (; q < end - 1; q++)
        if (!safe_text(*q))
            return 0;
    return 1;
}

/* fastpath.COMMON.fullmatch: the optional release is tried first, as the regex does. */
static int parse(const unsigned char *d, Py_ssize_t n, struct parsed *m)
{
    const unsigned char *end = d + n, *p = d;
    while (p < end && p - d <= 64 && release_char(*p))
        p++;
    if (p > d && p - d <= 64 && p < end && *p == ',' && parse_rest(p + 1, end, m)) {
        m->rel = d;
        m->rel_len = p - d;
        return 1;
    }
    m->rel = NULL;
    m->rel_len = 0;
    return parse_rest(d, end, m);
}

struct buf {
    char *data;
    Py_ssize_t len, cap;
};

static int reserve(struct buf *b, Py_ssize_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + more)
        cap *= 2;
    char *d = PyMem_Realloc(b->data, (size_t)cap);
    if (d == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

static inline void put(struct buf *b, const void *s, Py_ssize_t n)
{
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
}

#define PUT_LIT(b, s) put((b), (s), (Py_ssize_t)sizeof(s) - 1)

/* Stop, leaving the message at index i to the caller; 1 when a Python error is set. */
static int attr_u64(PyObject *obj, PyObject *name, uint64_t *v)
{
    PyObject *x = PyObject_GetAttr(obj, name);
    if (x == NULL)
        return -1;
    *v = PyLong_AsUnsignedLongLong(x);
    Py_DECREF(x);
    if (*v == (uint64_t)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();  /* negative or too large: not the common case */
        return 1;
    }
    return 0;
}

static PyObject *common(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "common() takes 10 arguments");
        return NULL;
    }
    PyObject *payloads = args[0], *keys = args[1], *sources = args[3], *states = args[4],
             *prio_tab = args[5], *crashing = args[6], *received = args[7], *parts = args[8],
             *move_to_end = args[9];
    if (!PyList_Check(payloads) || !PyList_Check(keys) || !PyDict_Check(sources) ||
        !PyDict_Check(states) || !PyTuple_Check(prio_tab) || PyTuple_GET_SIZE(prio_tab) != 256 ||
        !PyDict_Check(crashing) || !PyBytes_Check(received) || !PyList_Check(parts)) {
        PyErr_SetString(PyExc_TypeError, "common(): wrong argument types");
        return NULL;
    }
    Py_ssize_t i = PyLong_AsSsize_t(args[2]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t total = PyList_GET_SIZE(payloads);
    if (PyList_GET_SIZE(keys) != total) {
        PyErr_SetString(PyExc_ValueError, "common(): payloads and keys differ in length");
        return NULL;
    }
    struct buf out = {NULL, 0, 0};
    Py_ssize_t count = 0;
    PyObject *moved = NULL; /* the source last moved to the end of states (borrowed) */
    const char *recv_s = PyBytes_AS_STRING(received);
    Py_ssize_t recv_n = PyBytes_GET_SIZE(received);
    int check_crashing = PyDict_GET_SIZE(crashing) > 0;

    for (; i < total; i++) {
        PyObject *data = PyList_GET_ITEM(payloads, i);
        if (!PyBytes_Check(data))
            break;
        struct parsed m;
        if (!parse((const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &m))
            break;
        PyObject *prio = PyTuple_GET_ITEM(prio_tab, m.prio);
        if (prio == Py_None || !PyBytes_Check(prio))
            break;
        PyObject *info = PyDict_GetItemWithError(sources, PyList_GET_ITEM(keys, i));
        if (info == NULL) {
            if (PyErr_Occurred())
                goto error;
            break;
        }
        if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) != 2 ||
            !PyBytes_Check(PyTuple_GET_ITEM(info, 1)))
            break;
        PyObject *src = PyTuple_GET_ITEM(info, 0), *prefix = PyTuple_GET_ITEM(info, 1);
        PyObject *st = PyDict_GetItemWithError(states, src);
        if (st == NULL) {
            if (PyErr_Occurred())
                goto error;
            break;
        }
        if (check_crashing) {
            int c = PyDict_Contains(crashing, src);
            if (c < 0)
                goto error;
            if (c)
                break;
        }
        PyObject *um = PyObject_GetAttr(st, s_use_msgid);
        if (um == NULL)
            goto error;
        int use_msgid = PyObject_IsTrue(um);
        Py_DECREF(um);
        if (use_msgid < 0)
            goto error;
        if (use_msgid)
            break;
        uint64_t last_seq, last_ts;
        int r = attr_u64(st, s_last_seq, &last_seq);
        if (r < 0)
            goto error;
        if (r > 0 || last_seq == UINT64_MAX || m.seq_v != last_seq + 1)
            break;
        r = attr_u64(st, s_last_ts, &last_ts);
        if (r < 0)
            goto error;
        if (r > 0 || m.ts_v < last_ts)
            break;
        PyObject *idb = PyObject_GetAttr(st, s_idb);
        if (idb == NULL)
            goto error;
        if (!PyBytes_Check(idb)) {
            Py_DECREF(idb);
            break;
        }
        /* Every check passed: from here on the message is ours. */
        if (src != moved) {
            /* consecutive messages of one source leave the order as the first move made it */
            PyObject *res = PyObject_CallOneArg(move_to_end, src);
            if (res == NULL) {
                Py_DECREF(idb);
                goto error;
            }
            Py_DECREF(res);
            moved = src;
        }
        PyObject *seq = PyLong_FromUnsignedLongLong(m.seq_v);
        PyObject *ts = seq ? PyLong_FromUnsignedLongLong(m.ts_v) : NULL;
        if (ts == NULL || PyObject_SetAttr(st, s_last_seq, seq) < 0 ||
            PyObject_SetAttr(st, s_last_ts, ts) < 0 || PyObject_SetAttr(st, s_counter, seq) < 0) {
            Py_XDECREF(seq);
            Py_XDECREF(ts);
            Py_DECREF(idb);
            goto error;
        }
        Py_DECREF(seq);
        Py_DECREF(ts);
        Py_ssize_t need = PyBytes_GET_SIZE(prefix) + recv_n + m.rel_len + PyBytes_GET_SIZE(prio) +
                          2 * m.seq_len + m.ts_len + m.text_len + PyBytes_GET_SIZE(idb) + 160;
        if (reserve(&out, need) < 0) {
            Py_DECREF(idb);
            goto error;
        }
        put(&out, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix));
        put(&out, recv_s, recv_n);
        if (m.rel == NULL) {
            PUT_LIT(&out, NO_RELEASE);
        } else {
            PUT_LIT(&out, RELEASE_OPEN);
            put(&out, m.rel, m.rel_len);
            put(&out, "\"", 1);
        }
        put(&out, PyBytes_AS_STRING(prio), PyBytes_GET_SIZE(prio));
        put(&out, m.seq, m.seq_len);
        PUT_LIT(&out, TS);
        put(&out, m.ts, m.ts_len);
        if (m.cont)
            PUT_LIT(&out, CONT_TRUE);
        else
            PUT_LIT(&out, CONT_FALSE);
        put(&out, m.text, m.text_len);
        PUT_LIT(&out, TAIL);
        put(&out, PyBytes_AS_STRING(idb), PyBytes_GET_SIZE(idb));
        put(&out, m.seq, m.seq_len);
        PUT_LIT(&out, END);
        Py_DECREF(idb);
        count++;
    }
    if (out.len) {
        PyObject *chunk = PyBytes_FromStringAndSize(out.data, out.len);
        if (chunk == NULL)
            goto error;
        int r = PyList_Append(parts, chunk);
        Py_DECREF(chunk);
        if (r < 0)
            goto error;
    }
    PyMem_Free(out.data);
    return Py_BuildValue("(nnn)", i, count, out.len);

error:
    PyMem_Free(out.data);
    return NULL;
}

static PyMethodDef methods[] = {
    {"common", (PyCFunction)(void (*)(void))common, METH_FASTCALL,
     "Handle the common single-datagram messages of a batch from index start."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastjson", "The C loop of netconsolectl.receiver.fastpath.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastjson(void)
{
    s_last_seq = PyUnicode_InternFromString("last_seq");
    s_last_ts = PyUnicode_InternFromString("last_ts");
    s_counter = PyUnicode_InternFromString("counter");
    s_use_msgid = PyUnicode_InternFromString("use_msgid");
    s_idb = PyUnicode_InternFromString("idb");
    if (!s_last_seq || !s_last_ts || !s_counter || !s_use_msgid || !s_idb)
        return NULL;
    return PyModule_Create(&module);
}
