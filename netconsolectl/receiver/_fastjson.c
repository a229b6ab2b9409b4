/*
 * The receive path of `listen --json` in C: optional, built when a compiler is there.
 * fastpath.py and mmsg.py hold the same code in Python and use it when this module is missing;
 * both write the same bytes (tests/unit/test_receiver_output.py checks each fast path against
 * the general path, tests/listen/test_listen.py each batch cutter against the socket).
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
static inline int safe_text(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

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

/* An attribute as an unsigned 64-bit value: 0, 1 when it is not one (negative, too large),
 * -1 with a Python error set. */
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

/* The source whose messages are being handled: its State is read when its run of messages
 * starts and written back when it ends (another source, a message for the Python loop, the end
 * of the batch), so a burst from one sender costs no Python objects per message. */
struct run {
    PyObject *src;     /* borrowed; NULL: no run */
    PyObject *st;      /* borrowed: states[src] */
    PyObject *idb;     /* owned */
    uint64_t last_seq, last_ts;
    int dirty;         /* a message was handled: moved to the end, last_seq/last_ts changed */
};

static int run_end(struct run *r)
{
    int rc = 0;
    if (r->src != NULL && r->dirty) {
        PyObject *seq = PyLong_FromUnsignedLongLong(r->last_seq);
        PyObject *ts = seq ? PyLong_FromUnsignedLongLong(r->last_ts) : NULL;
        if (ts == NULL || PyObject_SetAttr(r->st, s_last_seq, seq) < 0 ||
            PyObject_SetAttr(r->st, s_last_ts, ts) < 0 ||
            PyObject_SetAttr(r->st, s_counter, seq) < 0)
            rc = -1;
        Py_XDECREF(seq);
        Py_XDECREF(ts);
    }
    Py_CLEAR(r->idb);
    r->src = NULL;
    r->dirty = 0;
    return rc;
}

/* Start a run for src: 1 started, 0 not the common case (left to Python), -1 error. */
static int run_start(struct run *r, PyObject *states, PyObject *src)
{
    PyObject *st = PyDict_GetItemWithError(states, src);
    if (st == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *um = PyObject_GetAttr(st, s_use_msgid);
    if (um == NULL)
        return -1;
    int use_msgid = PyObject_IsTrue(um);
    Py_DECREF(um);
    if (use_msgid != 0)
        return use_msgid < 0 ? -1 : 0;
    int rc = attr_u64(st, s_last_seq, &r->last_seq);
    if (rc == 0)
        rc = attr_u64(st, s_last_ts, &r->last_ts);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    PyObject *idb = PyObject_GetAttr(st, s_idb);
    if (idb == NULL)
        return -1;
    if (!PyBytes_Check(idb)) {
        Py_DECREF(idb);
        return 0;
    }
    r->src = src;
    r->st = st;
    r->idb = idb;
    r->dirty = 0;
    return 1;
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
    struct run run = {NULL, NULL, NULL, 0, 0, 0};
    Py_ssize_t count = 0;
    const char *recv_s = PyBytes_AS_STRING(received);
    Py_ssize_t recv_n = PyBytes_GET_SIZE(received);
    /* a crash report opens only in the Python loop, so this holds for the whole call */
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
        if (src != run.src) {
            if (run_end(&run) < 0)
                goto error;
            if (check_crashing) {
                int c = PyDict_Contains(crashing, src);
                if (c < 0)
                    goto error;
                if (c)
                    break;
            }
            int r = run_start(&run, states, src);
            if (r < 0)
                goto error;
            if (r == 0)
                break;
        }
        if (run.last_seq == UINT64_MAX || m.seq_v != run.last_seq + 1 || m.ts_v < run.last_ts)
            break;
        if (!run.dirty) {
            /* the source is now the most recently heard (the tracker evicts from the other
             * end); done once its first message is known to be ours */
            PyObject *res = PyObject_CallOneArg(move_to_end, src);
            if (res == NULL)
                goto error;
            Py_DECREF(res);
        }
        run.last_seq = m.seq_v;
        run.last_ts = m.ts_v;
        run.dirty = 1;
        PyObject *idb = run.idb;
        Py_ssize_t need = PyBytes_GET_SIZE(prefix) + recv_n + m.rel_len + PyBytes_GET_SIZE(prio) +
                          2 * m.seq_len + m.ts_len + m.text_len + PyBytes_GET_SIZE(idb) + 160;
        if (reserve(&out, need) < 0)
            goto error;
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
        count++;
    }
    if (run_end(&run) < 0)
        goto error;
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
    Py_XDECREF(run.idb);
    PyMem_Free(out.data);
    return NULL;
}

/*
 * split(msgs, n, mmsg_size, len_offset, data, size, names, step, namelen)
 *     -> (payloads, addresses)
 *
 * mmsg.BatchReceiver's batch after recvmmsg(2): payload i is data[i*size : i*size + len_i],
 * where len_i is the unsigned int at msgs[i*mmsg_size + len_offset] (msg_len), and address i
 * is names[i*step : i*step + namelen]. The same as the Python list comprehensions it replaces,
 * without a memoryview slice per datagram.
 */
static PyObject *split(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "split() takes 9 arguments");
        return NULL;
    }
    Py_ssize_t v[9];
    for (int k = 1; k < 9; k++) {
        if (k == 4 || k == 6)
            continue;
        v[k] = PyLong_AsSsize_t(args[k]);
        if (v[k] == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_ssize_t n = v[1], mmsg_size = v[2], len_offset = v[3], size = v[5], step = v[7],
               namelen = v[8];
    Py_buffer msgs, data, names;
    if (PyObject_GetBuffer(args[0], &msgs, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[4], &data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&msgs);
        return NULL;
    }
    if (PyObject_GetBuffer(args[6], &names, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&msgs);
        PyBuffer_Release(&data);
        return NULL;
    }
    PyObject *payloads = NULL, *addrs = NULL, *result = NULL;
    if (n < 0 || mmsg_size <= 0 || len_offset < 0 || len_offset + 4 > mmsg_size || size <= 0 ||
        namelen < 0 || namelen > step || n * mmsg_size > msgs.len || n * size > data.len ||
        n * step > names.len) {
        PyErr_SetString(PyExc_ValueError, "split(): sizes do not fit the buffers");
        goto done;
    }
    payloads = PyList_New(n);
    addrs = payloads ? PyList_New(n) : NULL;
    if (addrs == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned int len;
        memcpy(&len, (const char *)msgs.buf + i * mmsg_size + len_offset, sizeof len);
        if ((Py_ssize_t)len > size)
            len = (unsigned int)size;
        PyObject *p = PyBytes_FromStringAndSize((const char *)data.buf + i * size, len);
        if (p == NULL)
            goto done;
        PyList_SET_ITEM(payloads, i, p);
        PyObject *a = PyBytes_FromStringAndSize((const char *)names.buf + i * step, namelen);
        if (a == NULL)
            goto done;
        PyList_SET_ITEM(addrs, i, a);
    }
    result = PyTuple_Pack(2, payloads, addrs);
done:
    Py_XDECREF(payloads);
    Py_XDECREF(addrs);
    PyBuffer_Release(&msgs);
    PyBuffer_Release(&data);
    PyBuffer_Release(&names);
    return result;
}

static PyMethodDef methods[] = {
    {"common", (PyCFunction)(void (*)(void))common, METH_FASTCALL,
     "Handle the common single-datagram messages of a batch from index start."},
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "Cut a recvmmsg batch into payloads and addresses."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastjson",
    "The C loops of netconsolectl.receiver.fastpath and .mmsg.", -1,
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
