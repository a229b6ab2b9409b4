/*
 * The receive path of `listen --json` in C: optional, built when a compiler is there.
 * fastpath.py, mmsg.py, sinks/reliable.py and sinks/forward.py hold the same code in Python
 * and use it when this module is missing; both write the same bytes
 * (tests/unit/test_receiver_output.py checks each fast path against the general path and the
 * RFC 5424 shortcut against syslog_line, tests/listen/test_listen.py each batch cutter against
 * the socket, tests/unit/test_spool.py the spool records of both framings).
 *
 * common(payloads, keys, start, sources, states, prio, crashing, received, parts, move_to_end,
 *        crash, frags, now, frag_keys, done_keys) -> (next, messages, size, fragments, reassembled)
 *
 * Handles payloads[start:] in order while each one is a single-datagram extended message of
 * the common shape (what wire.COMMON matches, in sequence, from a known source without an
 * open crash report, not a line the crash detector may open a report on) or, when ``frags`` is
 * given, a fragment of the shape of wire.FRAGMENT, and stops at the first one that is not,
 * returning its index: the caller takes that one through its own loop and calls again after
 * it. Nothing is changed for the message it stops at. A fragment goes into ``frags`` (the
 * Reassembler below); a message it completes is written here when it is of the common shape
 * and in sequence, else it (and any message given up on the way) waits in the reassembler's
 * ready list and the call returns right after that fragment: the caller hands the ready list to
 * the general path, in order, and calls again. The JSON lines of the messages handled are
 * appended to ``parts`` as one bytes object of ``size`` bytes.
 *
 *   sources   dict: address key -> (source, b'{"type":"message","host":..,"received":"')
 *   states    the tracker's OrderedDict: source -> State (last_seq, last_ts, counter,
 *             use_msgid, idb, release)
 *   prio      tuple of 256: b',"facility":F,"level":L,"seq":' or None (general path)
 *   crashing  dict of sources with an open crash report
 *   received  the receive time, b"2026-01-02T03:04:05.678901Z"
 *   crash     None, or crash.OpenerTable.for_fast_path(): (first-byte flags, needles, level)
 *   frags     None, or the Reassembler fragments go to
 *   now       the receive time, seconds (when a fragment set was first seen)
 *   frag_keys, done_keys  None, or lists the keys of the fragments taken, and of the
 *             messages written from fragments, are appended to (per-host counts)
 *
 * What the loop takes from Python rather than copies: the opener table, the reassembly
 * limits, the constant pieces of the message line (set_line). Its grammar and its in-sequence
 * test (in_sequence, same_release) are the compiled form of wire.COMMON/FRAGMENT and
 * sources.in_sequence; the differential tests hold them together.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <stddef.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static PyObject *s_last_seq, *s_last_ts, *s_counter, *s_use_msgid, *s_idb, *s_release;

/* The constant pieces of a message line, from fastpath.LINE_PIECES (set_line(), at import):
 * the JSON shape is written down once, there. */
enum { NO_RELEASE, RELEASE_OPEN, TS, CONT_FALSE, CONT_TRUE, TAIL, END, N_PIECES };
static PyObject *pieces[N_PIECES];
static Py_ssize_t pieces_len;

/* Text bytes copied into a JSON string as they are: printable ASCII without '"' and '\'. */
static inline int safe_text(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* All of p[0:n] are safe_text bytes (a fragmented message has thousands). */
static int all_safe(const unsigned char *p, Py_ssize_t n)
{
    const unsigned char *end = p + n;
#ifdef __SSE2__
    /* as signed bytes, 0x80-0xff are below 0x20 too */
    const __m128i space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f),
                  quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
#define UNSAFE(v)                                                                    \
    _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, del)),    \
                 _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)))
    /* 64 bytes a test: one branch and one movemask for four loads (with one per 16 bytes it
     * was a quarter of the C loop's time in a profile of listen at the three-fragment limit) */
    for (; end - p >= 64; p += 64) {
        const __m128i *q = (const __m128i *)p;
        __m128i a = _mm_loadu_si128(q), b = _mm_loadu_si128(q + 1), c = _mm_loadu_si128(q + 2),
                d = _mm_loadu_si128(q + 3);
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(UNSAFE(a), UNSAFE(b)),
                                           _mm_or_si128(UNSAFE(c), UNSAFE(d)))))
            return 0;
    }
    for (; end - p >= 16; p += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        if (_mm_movemask_epi8(UNSAFE(v)))
            return 0;
    }
#undef UNSAFE
#endif
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        /* any byte < 0x20 or >= 0x7f: the word test of "has a byte below / above" */
        uint64_t low = (w - 0x2020202020202020ULL) & ~w & 0x8080808080808080ULL;
        uint64_t high = (w + 0x0101010101010101ULL * (0x80 - 0x7f)) | w;
        uint64_t q = w ^ 0x2222222222222222ULL, b = w ^ 0x5c5c5c5c5c5c5c5cULL;
        uint64_t quote = (q - 0x0101010101010101ULL) & ~q & 0x8080808080808080ULL;
        uint64_t bs = (b - 0x0101010101010101ULL) & ~b & 0x8080808080808080ULL;
        if ((low | (high & 0x8080808080808080ULL) | quote | bs) != 0)
            break;
        p += 8;
    }
    for (; p < end; p++)
        if (!safe_text(*p))
            return 0;
    return 1;
}

/* Release bytes (fastpath._RELEASE): printable ASCII without space , ; " and backslash. */
static inline int release_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != ',' && c != ';' && c != '"' && c != '\\';
}

/* The largest value of 64 bits: a number of 20 digits is past it when it sorts after it. */
static const char u64_max[] = "18446744073709551615";

/* The digits at p, at most 20 of them: where they end; *v their value (modulo 2^64). No test
 * per digit: only a number of 20 digits can be past 64 bits (u64_max). */
static inline const unsigned char *digits(const unsigned char *p, const unsigned char *end,
                                          uint64_t *v)
{
    const unsigned char *lim = end - p > 20 ? p + 20 : end;
    uint64_t x = 0;
    while (p < lim && (unsigned)(*p - '0') <= 9)
        x = x * 10 + (unsigned)(*p++ - '0');
    *v = x;
    return p;
}

/* A canonical decimal (0, or no leading zero, at most 20 digits) followed by ','.
 * Returns the position after the comma, or NULL; *v is the value, *over set when it does not
 * fit 64 bits (the caller leaves such a message to Python). */
static const unsigned char *number(const unsigned char *p, const unsigned char *end,
                                   uint64_t *v, int *over)
{
    const unsigned char *start = p;
    uint64_t x = 0;
    if (p >= end || (unsigned)(*p - '0') > 9)
        return NULL;
    if (*p == '0')
        p++;
    else
        p = digits(p, end, &x);
    if (p >= end || *p != ',')
        return NULL;
    if (p - start == 20 && memcmp(start, u64_max, 20) > 0)
        *over = 1;
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
    return all_safe(q, m->text_len);
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

/* The output buffer common() writes its lines into, kept from one call to the next: a batch
 * of fragmented messages is a few hundred KiB, and a buffer grown anew on every call is fresh
 * memory that the kernel faults in page by page (a tenth of the receive loop's time in a
 * profile). A call made while another one holds it (Python code run from inside the loop)
 * gets a buffer of its own; a buffer that grew past KEEP_MAX is not kept. */
#define KEEP_MAX (4 << 20)
static struct buf kept;
static int kept_held;

/* The kept buffer, emptied (*owned = 1), or a new one when it is in use (*owned = 0). */
static struct buf buf_take(int *owned)
{
    *owned = !kept_held;
    if (!*owned)
        return (struct buf){NULL, 0, 0};
    kept_held = 1;
    struct buf b = kept;
    b.len = 0;
    return b;
}

static void buf_give_back(struct buf *b, int owned)
{
    if (!owned || b->cap > KEEP_MAX) {
        PyMem_Free(b->data);
        if (owned)
            kept = (struct buf){NULL, 0, 0};
    } else {
        kept = *b;
    }
    if (owned)
        kept_held = 0;
}

static inline void put(struct buf *b, const void *s, Py_ssize_t n)
{
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
}

#define PUT_PIECE(b, k) put((b), PyBytes_AS_STRING(pieces[k]), PyBytes_GET_SIZE(pieces[k]))

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
    PyObject *release; /* owned: the stream's release (str) or None */
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
    Py_CLEAR(r->release);
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
    PyObject *release = PyObject_GetAttr(st, s_release);
    if (release == NULL) {
        Py_DECREF(idb);
        return -1;
    }
    if (release != Py_None && !PyUnicode_Check(release)) {
        Py_DECREF(idb);
        Py_DECREF(release);
        return 0;
    }
    r->src = src;
    r->st = st;
    r->idb = idb;
    r->release = release;
    r->dirty = 0;
    return 1;
}

/* ---- ncfrag reassembly ------------------------------------------------------------------
 *
 * Reassembler(done, header, timeout, max_messages, max_bytes, per_source, recent,
 *             source_records, overhead, max_total, max_pieces)
 *
 * The same rules as netconsolectl.receiver.reassembly.Reassembler (the reference; the
 * differential fuzz test holds the two together), with its limits passed in from there:
 * pending messages keyed by (source, seq) in first-seen order, at most ``per_source`` open
 * per source (the oldest given up, reason "limited"), a message given up ("limited") at a piece
 * past ``max_pieces`` (the duplicate test looks at every piece), the oldest given up past
 * ``max_messages`` or ``max_bytes`` ("evicted") or ``timeout`` seconds ("timeout"); the last
 * ``recent`` completed (seq, ts) of each source remembered so a late duplicate piece is not a
 * new message.
 * Messages that leave are ``done(source, header, body, complete, reason)`` objects; a header
 * is made with ``header(None, prio, seq, ts, cont, (off, total))`` for a message whose pieces
 * came only through the C loop.
 */
/* A piece: data[start:start + len] (the datagram itself when it came through the C loop, so
 * that its bytes are not copied) at offset off of the body. */
struct chunk {
    Py_ssize_t off, len, start;
    PyObject *data; /* owned bytes */
};

struct srcrec;

struct entry {
    struct entry *prev, *next; /* first-seen order over all sources */
    struct srcrec *rec;
    PyObject *header; /* owned, or NULL: made from the fields below when it leaves */
    uint64_t seq, ts;
    Py_ssize_t total, have, first_off;
    double first_seen;
    unsigned prio;
    int cont;
    Py_ssize_t n, cap;
    struct chunk *chunks;
};

struct srcrec {
    PyObject *src; /* owned */
    Py_ssize_t n;  /* open sets, oldest first */
    struct entry **sets;
    Py_ssize_t recent_n, recent_pos;
    uint64_t *recent; /* pairs (seq, ts) */
};

typedef struct {
    PyObject_HEAD
    PyObject *done_cls, *header_cls, *by_source, *ready;
    double timeout;
    Py_ssize_t max_messages, max_bytes, per_source, recent, source_records, overhead, max_total,
        max_pieces;
    Py_ssize_t count, bytes, duplicates, evicted, limited;
    struct entry *head, *tail;
} Reasm;

static PyObject *s_timeout, *s_evicted, *s_limited, *s_superseded, *s_shutdown, *s_empty;

static void entry_free(struct entry *e)
{
    for (Py_ssize_t k = 0; k < e->n; k++)
        Py_DECREF(e->chunks[k].data);
    PyMem_Free(e->chunks);
    Py_XDECREF(e->header);
    PyMem_Free(e);
}

static void srcrec_free(struct srcrec *r)
{
    Py_DECREF(r->src);
    PyMem_Free(r->sets);
    PyMem_Free(r->recent);
    PyMem_Free(r);
}

/* Take e out of the global list and its source's sets (not freed). */
static void entry_unlink(Reasm *t, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    struct srcrec *r = e->rec;
    for (Py_ssize_t k = 0; k < r->n; k++) {
        if (r->sets[k] == e) {
            memmove(r->sets + k, r->sets + k + 1, (size_t)(r->n - k - 1) * sizeof *r->sets);
            r->n--;
            break;
        }
    }
    t->count--;
    t->bytes -= e->have + t->overhead;
}

/* Sort the pieces by offset; 1 when they cover [0, total). */
static int entry_sort(struct entry *e)
{
    /* by offset, stable; insertion, since a message has a few pieces, mostly in order
     * (glibc's qsort allocates a buffer on each call) */
    for (Py_ssize_t k = 1; k < e->n; k++) {
        struct chunk c = e->chunks[k];
        Py_ssize_t j = k;
        for (; j > 0 && e->chunks[j - 1].off > c.off; j--)
            e->chunks[j] = e->chunks[j - 1];
        e->chunks[j] = c;
    }
    Py_ssize_t pos = 0;
    int complete = 1;
    for (Py_ssize_t k = 0; k < e->n; k++) {
        Py_ssize_t off = e->chunks[k].off, end = off + e->chunks[k].len;
        if (end <= pos)
            continue;
        if (off > pos)
            complete = 0;
        pos = end;
    }
    return complete && pos >= e->total;
}

/* The body as reassembly.Pending.body makes it, in segments: the pieces in offset order, each
 * less what an earlier offset already gave (a gap is skipped). Calls f(seg, len, arg) for each;
 * stops at the first non-zero return and returns it. The pieces must be sorted. */
typedef int (*segment_fn)(const unsigned char *seg, Py_ssize_t len, void *arg);

static int entry_segments(const struct entry *e, segment_fn f, void *arg)
{
    Py_ssize_t pos = 0;
    for (Py_ssize_t k = 0; k < e->n; k++) {
        const struct chunk *c = &e->chunks[k];
        Py_ssize_t end = c->off + c->len;
        if (end <= pos)
            continue;
        Py_ssize_t skip = c->off < pos ? pos - c->off : 0;
        const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(c->data) + c->start;
        int r = f(d + skip, c->len - skip, arg);
        if (r)
            return r;
        pos = end;
    }
    return 0;
}

static int seg_len(const unsigned char *seg, Py_ssize_t len, void *arg)
{
    (void)seg;
    *(Py_ssize_t *)arg += len;
    return 0;
}

static int seg_copy(const unsigned char *seg, Py_ssize_t len, void *arg)
{
    unsigned char **w = arg;
    memcpy(*w, seg, (size_t)len);
    *w += len;
    return 0;
}

/* The body (reassembly.Pending.body) as a new bytes object; *complete set. */
static PyObject *entry_body(struct entry *e, int *complete)
{
    *complete = entry_sort(e);
    Py_ssize_t len = 0;
    entry_segments(e, seg_len, &len);
    PyObject *out = PyBytes_FromStringAndSize(NULL, len);
    if (out == NULL)
        return NULL;
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(out);
    entry_segments(e, seg_copy, &w);
    return out;
}

static PyObject *entry_header(Reasm *t, struct entry *e)
{
    if (e->header != NULL) {
        Py_INCREF(e->header);
        return e->header;
    }
    return PyObject_CallFunction(t->header_cls, "OIKKO(nn)", Py_None, e->prio,
                                 (unsigned long long)e->seq, (unsigned long long)e->ts,
                                 e->cont ? Py_True : Py_False, e->first_off, e->total);
}

/* A done object for e, given its body; e is freed. */
static PyObject *entry_done_with(Reasm *t, struct entry *e, PyObject *body, int complete,
                                 PyObject *reason)
{
    PyObject *header = entry_header(t, e), *done = NULL;
    if (header != NULL)
        done = PyObject_CallFunctionObjArgs(t->done_cls, e->rec->src, header, body,
                                            complete ? Py_True : Py_False, reason, NULL);
    Py_XDECREF(header);
    entry_free(e);
    return done;
}

/* Give e up (unlinked already), or hand a complete one to the general path: its done object,
 * complete or not as its pieces say, goes to the ready list. */
static int give_up(Reasm *t, struct entry *e, PyObject *reason)
{
    int complete;
    PyObject *body = entry_body(e, &complete);
    if (body == NULL) {
        entry_free(e);
        return -1;
    }
    PyObject *done = entry_done_with(t, e, body, complete, reason);
    Py_DECREF(body);
    if (done == NULL)
        return -1;
    int rc = PyList_Append(t->ready, done);
    Py_DECREF(done);
    return rc;
}

static int pop_oldest(Reasm *t, PyObject *reason)
{
    struct entry *e = t->head;
    entry_unlink(t, e);
    if (reason == s_evicted)
        t->evicted++;
    return give_up(t, e, reason);
}

/* The record of a source, made when missing; NULL with an error set. */
static struct srcrec *srcrec_get(Reasm *t, PyObject *src)
{
    PyObject *cap = PyDict_GetItemWithError(t->by_source, src);
    if (cap != NULL)
        return PyCapsule_GetPointer(cap, NULL);
    if (PyErr_Occurred())
        return NULL;
    if (PyDict_GET_SIZE(t->by_source) >= t->source_records) {
        /* forget the sources with nothing open (their recent lists); the open ones are
         * bounded by max_messages */
        PyObject *idle = PyList_New(0), *k, *v;
        Py_ssize_t pos = 0;
        if (idle == NULL)
            return NULL;
        while (PyDict_Next(t->by_source, &pos, &k, &v)) {
            struct srcrec *r = PyCapsule_GetPointer(v, NULL);
            if (r->n == 0 && PyList_Append(idle, k) < 0) {
                Py_DECREF(idle);
                return NULL;
            }
        }
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(idle); j++) {
            PyObject *key = PyList_GET_ITEM(idle, j);
            struct srcrec *r = PyCapsule_GetPointer(PyDict_GetItem(t->by_source, key), NULL);
            if (PyDict_DelItem(t->by_source, key) < 0) {
                Py_DECREF(idle);
                return NULL;
            }
            srcrec_free(r);
        }
        Py_DECREF(idle);
    }
    struct srcrec *r = PyMem_Calloc(1, sizeof *r);
    if (r == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    r->sets = PyMem_Calloc((size_t)t->per_source + 1, sizeof *r->sets);
    r->recent = PyMem_Calloc((size_t)t->recent * 2 + 2, sizeof *r->recent);
    if (r->sets == NULL || r->recent == NULL) {
        PyMem_Free(r->sets);
        PyMem_Free(r->recent);
        PyMem_Free(r);
        PyErr_NoMemory();
        return NULL;
    }
    Py_INCREF(src);
    r->src = src;
    cap = PyCapsule_New(r, NULL, NULL);
    if (cap == NULL || PyDict_SetItem(t->by_source, src, cap) < 0) {
        Py_XDECREF(cap);
        srcrec_free(r);
        return NULL;
    }
    Py_DECREF(cap);
    return r;
}

static int recent_has(Reasm *t, struct srcrec *r, uint64_t seq, uint64_t ts)
{
    for (Py_ssize_t k = 0; k < r->recent_n && k < t->recent; k++)
        if (r->recent[2 * k] == seq && r->recent[2 * k + 1] == ts)
            return 1;
    return 0;
}

static void recent_add(Reasm *t, struct srcrec *r, uint64_t seq, uint64_t ts)
{
    if (t->recent <= 0)
        return;
    r->recent[2 * r->recent_pos] = seq;
    r->recent[2 * r->recent_pos + 1] = ts;
    r->recent_pos = (r->recent_pos + 1) % t->recent;
    if (r->recent_n < t->recent)
        r->recent_n++;
}

struct piece {
    PyObject *src, *header, *body; /* borrowed; header may be NULL */
    uint64_t seq, ts;
    Py_ssize_t off, total, start, len; /* the piece is body[start:start + len] */
    unsigned prio;
    int cont;
    double now;
};

/* Add one piece. Returns 1 when it completed its message (*done: the entry, unlinked, its
 * pieces sorted), 0 otherwise, -1 on error. Messages given up on the way (superseded, limited,
 * evicted) are appended to the ready list. */
static int frag_add(Reasm *t, const struct piece *p, struct entry **done)
{
    struct srcrec *r = srcrec_get(t, p->src);
    if (r == NULL)
        return -1;
    if (recent_has(t, r, p->seq, p->ts)) {
        t->duplicates++;
        return 0;
    }
    struct entry *e = NULL;
    for (Py_ssize_t k = 0; k < r->n; k++)
        if (r->sets[k]->seq == p->seq)
            e = r->sets[k];
    if (e != NULL && (e->total != p->total || e->ts != p->ts)) {
        /* same seq, another message: the sender restarted mid-message */
        entry_unlink(t, e);
        if (give_up(t, e, s_superseded) < 0)
            return -1;
        e = NULL;
    }
    if (e == NULL) {
        if (r->n >= t->per_source) {
            struct entry *old = r->sets[0];
            entry_unlink(t, old);
            t->limited++;
            if (give_up(t, old, s_limited) < 0)
                return -1;
        }
        e = PyMem_Calloc(1, sizeof *e);
        if (e == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        e->rec = r;
        e->seq = p->seq;
        e->ts = p->ts;
        e->total = p->total;
        e->first_off = p->off;
        e->first_seen = p->now;
        e->prio = p->prio;
        e->cont = p->cont;
        e->header = p->header;
        Py_XINCREF(e->header);
        e->prev = t->tail;
        if (t->tail)
            t->tail->next = e;
        else
            t->head = e;
        t->tail = e;
        r->sets[r->n++] = e;
        t->count++;
        t->bytes += t->overhead;
    } else {
        for (Py_ssize_t k = 0; k < e->n; k++) {
            if (e->chunks[k].off == p->off) {
                t->duplicates++;
                return 0;
            }
        }
        if (e->n >= t->max_pieces) {
            entry_unlink(t, e);
            t->limited++;
            return give_up(t, e, s_limited) < 0 ? -1 : 0;
        }
    }
    if (e->n == e->cap) {
        Py_ssize_t cap = e->cap ? e->cap * 2 : 4;
        struct chunk *c = PyMem_Realloc(e->chunks, (size_t)cap * sizeof *c);
        if (c == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        e->chunks = c;
        e->cap = cap;
    }
    Py_INCREF(p->body);
    e->chunks[e->n] = (struct chunk){p->off, p->len, p->start, p->body};
    e->n++;
    e->have += p->len;
    t->bytes += p->len;
    if (e->have >= e->total && entry_sort(e)) {
        entry_unlink(t, e);
        recent_add(t, r, e->seq, e->ts);
        *done = e;
        return 1;
    }
    while (t->head != NULL && (t->count > t->max_messages || t->bytes > t->max_bytes))
        if (pop_oldest(t, s_evicted) < 0)
            return -1;
    return 0;
}

static PyObject *take_ready(Reasm *t)
{
    PyObject *out = t->ready, *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    t->ready = fresh;
    return out;
}

static int u64_attr(PyObject *obj, const char *name, uint64_t *v)
{
    PyObject *x = PyObject_GetAttrString(obj, name);
    if (x == NULL)
        return -1;
    *v = PyLong_AsUnsignedLongLong(x);
    Py_DECREF(x);
    return (*v == (uint64_t)-1 && PyErr_Occurred()) ? -1 : 0;
}

/* add(source, header, body, now) -> list of done: reassembly.Reassembler.add */
static PyObject *Reasm_add(Reasm *t, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "add(source, header, body: bytes, now)");
        return NULL;
    }
    struct piece p = {args[0], args[1], args[2], 0, 0, 0, 0, 0, PyBytes_GET_SIZE(args[2]), 0, 0,
                      0.0};
    p.now = PyFloat_AsDouble(args[3]);
    if (p.now == -1.0 && PyErr_Occurred())
        return NULL;
    PyObject *frag = PyObject_GetAttrString(p.header, "frag");
    if (frag == NULL)
        return NULL;
    int ok = PyArg_ParseTuple(frag, "nn", &p.off, &p.total);
    Py_DECREF(frag);
    if (!ok || u64_attr(p.header, "seq", &p.seq) < 0 || u64_attr(p.header, "ts_usec", &p.ts) < 0)
        return NULL;
    struct entry *e = NULL;
    int r = frag_add(t, &p, &e);
    if (r < 0)
        return NULL;
    if (r == 1) {
        int complete;
        PyObject *body = entry_body(e, &complete), *done = NULL;
        if (body == NULL)
            entry_free(e);
        else
            done = entry_done_with(t, e, body, 1, s_empty);
        Py_XDECREF(body);
        if (done == NULL)
            return NULL;
        r = PyList_Append(t->ready, done);
        Py_DECREF(done);
        if (r < 0)
            return NULL;
    }
    return take_ready(t);
}

/* expire(now): give up messages first seen more than timeout seconds ago */
static PyObject *Reasm_expire(Reasm *t, PyObject *arg)
{
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    double limit = now - t->timeout;
    while (t->head != NULL && t->head->first_seen <= limit)
        if (pop_oldest(t, s_timeout) < 0)
            return NULL;
    return take_ready(t);
}

static PyObject *Reasm_flush(Reasm *t, PyObject *unused)
{
    (void)unused;
    while (t->head != NULL)
        if (pop_oldest(t, s_shutdown) < 0)
            return NULL;
    return take_ready(t);
}

static PyObject *Reasm_take_ready(Reasm *t, PyObject *unused)
{
    (void)unused;
    return take_ready(t);
}

/* add_to_pending: the Python class's shortcut; here add() is as fast, so always "not pending" */
static PyObject *Reasm_add_to_pending(Reasm *t, PyObject *args)
{
    (void)t;
    (void)args;
    Py_RETURN_NONE;
}

static Py_ssize_t Reasm_len(Reasm *t)
{
    return t->count;
}

static int Reasm_init(Reasm *t, PyObject *args, PyObject *kw)
{
    (void)kw;
    PyObject *done, *header;
    if (!PyArg_ParseTuple(args, "OOdnnnnnnnn", &done, &header, &t->timeout, &t->max_messages,
                          &t->max_bytes, &t->per_source, &t->recent, &t->source_records,
                          &t->overhead, &t->max_total, &t->max_pieces))
        return -1;
    if (t->per_source < 1 || t->recent < 0 || t->source_records < 1 || t->max_pieces < 1) {
        PyErr_SetString(PyExc_ValueError, "Reassembler(): limits out of range");
        return -1;
    }
    Py_INCREF(done);
    Py_XSETREF(t->done_cls, done);
    Py_INCREF(header);
    Py_XSETREF(t->header_cls, header);
    if (t->by_source == NULL && (t->by_source = PyDict_New()) == NULL)
        return -1;
    if (t->ready == NULL && (t->ready = PyList_New(0)) == NULL)
        return -1;
    return 0;
}

static void Reasm_dealloc(Reasm *t)
{
    while (t->head != NULL) {
        struct entry *e = t->head;
        entry_unlink(t, e);
        entry_free(e);
    }
    if (t->by_source != NULL) {
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(t->by_source, &pos, &k, &v))
            srcrec_free(PyCapsule_GetPointer(v, NULL));
        Py_DECREF(t->by_source);
    }
    Py_XDECREF(t->ready);
    Py_XDECREF(t->done_cls);
    Py_XDECREF(t->header_cls);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyMethodDef Reasm_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Reasm_add, METH_FASTCALL, "Add one fragment."},
    {"expire", (PyCFunction)Reasm_expire, METH_O, "Give up timed-out messages."},
    {"flush", (PyCFunction)Reasm_flush, METH_NOARGS, "Give up everything pending."},
    {"take_ready", (PyCFunction)Reasm_take_ready, METH_NOARGS,
     "Messages that left during common(), in order."},
    {"add_to_pending", (PyCFunction)Reasm_add_to_pending, METH_VARARGS, "Always None."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Reasm_members[] = {
    {"bytes", T_PYSSIZET, offsetof(Reasm, bytes), READONLY, "Bytes held."},
    {"duplicates", T_PYSSIZET, offsetof(Reasm, duplicates), READONLY, "Duplicate pieces."},
    {"evicted", T_PYSSIZET, offsetof(Reasm, evicted), READONLY, "Given up for the limits."},
    {"limited", T_PYSSIZET, offsetof(Reasm, limited), READONLY,
     "Given up for the per-source limit."},
    {"timeout", T_DOUBLE, offsetof(Reasm, timeout), READONLY, "Seconds."},
    {"max_messages", T_PYSSIZET, offsetof(Reasm, max_messages), READONLY, "Limit."},
    {"max_bytes", T_PYSSIZET, offsetof(Reasm, max_bytes), READONLY, "Limit."},
    {NULL, 0, 0, 0, NULL},
};

static PySequenceMethods Reasm_seq = {.sq_length = (lenfunc)Reasm_len};

static PyTypeObject ReasmType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "netconsolectl.receiver._fastjson.Reassembler",
    .tp_basicsize = sizeof(Reasm),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ncfrag reassembly (see reassembly.Reassembler).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reasm_init,
    .tp_dealloc = (destructor)Reasm_dealloc,
    .tp_methods = Reasm_methods,
    .tp_members = Reasm_members,
    .tp_as_sequence = &Reasm_seq,
};

/* The crash detector's opener table (crash.OpenerTable.for_fast_path), passed by the caller:
 * a message it cannot rule out is left to Python. */
#define MAX_NEEDLES 8
struct crash_rule {
    const unsigned char *first; /* 256 flags */
    PyObject *needles;          /* tuple of bytes */
    long max_level;
    /* per needle: the index of a byte that is rare in log text, searched for with memchr
     * (glibc's memmem sets up its search anew on every call, a cost on every message) */
    Py_ssize_t rare[MAX_NEEDLES];
};

/* The position in needle of its least common byte, by a rough rank of English log text. */
static Py_ssize_t rare_index(const unsigned char *n, Py_ssize_t m)
{
    static const char common[] = " etaoinsrhldcu0123456789:.,=-_/()[]mfpgwybvkxjqz";
    Py_ssize_t best = 0, best_rank = -1;
    for (Py_ssize_t k = 0; k < m; k++) {
        const char *at = memchr(common, n[k], sizeof common - 1);
        Py_ssize_t rank = at ? at - common : (Py_ssize_t)sizeof common;
        if (rank > best_rank) {
            best_rank = rank;
            best = k;
        }
    }
    return best;
}

/* text[0:n] contains needle[0:m]; rare is the index of a rare byte of the needle. */
static int contains(const unsigned char *text, Py_ssize_t n, const unsigned char *needle,
                    Py_ssize_t m, Py_ssize_t rare)
{
    if (m > n)
        return 0;
    const unsigned char *p = text + rare, *last = text + n - (m - rare);
    while (p <= last) {
        p = memchr(p, needle[rare], (size_t)(last - p + 1));
        if (p == NULL)
            return 0;
        if (memcmp(p - rare, needle, (size_t)m) == 0)
            return 1;
        p++;
    }
    return 0;
}

static int crash_rule_from(PyObject *obj, struct crash_rule *c)
{
    if (obj == Py_None) {
        c->first = NULL;
        return 0;
    }
    PyObject *first, *needles;
    if (!PyTuple_Check(obj) || !PyArg_ParseTuple(obj, "SO!l", &first, &PyTuple_Type, &needles,
                                                 &c->max_level))
        return -1;
    if (PyBytes_GET_SIZE(first) != 256) {
        PyErr_SetString(PyExc_ValueError, "crash rule: 256 first-byte flags expected");
        return -1;
    }
    if (PyTuple_GET_SIZE(needles) > MAX_NEEDLES) {
        PyErr_SetString(PyExc_ValueError, "crash rule: too many needles");
        return -1;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(needles); k++) {
        PyObject *n = PyTuple_GET_ITEM(needles, k);
        if (!PyBytes_Check(n)) {
            PyErr_SetString(PyExc_TypeError, "crash rule: needles must be bytes");
            return -1;
        }
        c->rare[k] = rare_index((const unsigned char *)PyBytes_AS_STRING(n),
                                PyBytes_GET_SIZE(n));
    }
    c->first = (const unsigned char *)PyBytes_AS_STRING(first);
    c->needles = needles;
    return 0;
}

/* 1 when the detector may take the message as the first line of a report (crash.may_open). */
static int may_open(const struct crash_rule *c, unsigned level, const unsigned char *text,
                    Py_ssize_t n)
{
    if (c->first == NULL)
        return 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(c->needles); k++) {
        PyObject *needle = PyTuple_GET_ITEM(c->needles, k);
        Py_ssize_t m = PyBytes_GET_SIZE(needle);
        if (m == 0 ||
            contains(text, n, (const unsigned char *)PyBytes_AS_STRING(needle), m, c->rare[k]))
            return 1;
    }
    return n > 0 && (long)level <= c->max_level && c->first[text[0]];
}

/* A number of at most 20 digits (leading zeros allowed, as wire.parse_header takes them) then
 * the byte `stop`; NULL when it is not, or does not fit 64 bits. */
static const unsigned char *number_any(const unsigned char *p, const unsigned char *end,
                                       unsigned char stop, uint64_t *v)
{
    const unsigned char *start = p;
    p = digits(p, end, v);
    if (p == start || p >= end || *p != stop ||
        (p - start == 20 && memcmp(start, u64_max, 20) > 0))
        return NULL;
    return p + 1;
}

/* prio,seq,ts_usec,flag,ncfrag=off/total;body with the values wire.parse_datagram accepts
 * (fastpath.FRAGMENT). Returns the body's offset, or 0 when it is anything else. */
static Py_ssize_t parse_frag(const unsigned char *d, Py_ssize_t n, Py_ssize_t max_total,
                             struct piece *f)
{
    const unsigned char *end = d + n, *p = d;
    uint64_t prio, off, total;
    if ((p = number_any(p, end, ',', &prio)) == NULL || prio > 255 ||
        (p = number_any(p, end, ',', &f->seq)) == NULL ||
        (p = number_any(p, end, ',', &f->ts)) == NULL)
        return 0;
    if (end - p < 9 || (p[0] != '-' && p[0] != 'c') || memcmp(p + 1, ",ncfrag=", 8) != 0)
        return 0;
    f->cont = p[0] == 'c';
    p += 9;
    if ((p = number_any(p, end, '/', &off)) == NULL ||
        (p = number_any(p, end, ';', &total)) == NULL)
        return 0;
    Py_ssize_t body = end - p;
    if (body == 0 || off >= total || total > (uint64_t)max_total || off + (uint64_t)body > total)
        return 0;
    f->prio = (unsigned)prio;
    f->off = (Py_ssize_t)off;
    f->total = (Py_ssize_t)total;
    return p - d;
}

struct loop {
    PyObject *states, *crashing, *move_to_end;
    int check_crashing;
    struct crash_rule crash;
    struct run run;
    struct buf out;
    int out_owned; /* out is the kept buffer (buf_take) */
    const char *recv_s;
    Py_ssize_t recv_n;
};

/* Make src the run's source: 1 its messages may be handled here, 0 not (left to Python),
 * -1 error. */
static int run_for(struct loop *L, PyObject *src)
{
    if (src == L->run.src)
        return 1;
    if (run_end(&L->run) < 0)
        return -1;
    if (L->check_crashing) {
        int c = PyDict_Contains(L->crashing, src);
        if (c != 0)
            return c < 0 ? -1 : 0;
    }
    return run_start(&L->run, L->states, src);
}

/* The message is next in sequence: take it (moving its source to the most recently heard end
 * once per run). 1 taken, 0 not in sequence, -1 error. */
static int in_sequence(struct loop *L, PyObject *src, uint64_t seq, uint64_t ts)
{
    struct run *r = &L->run;
    if (r->last_seq == UINT64_MAX || seq != r->last_seq + 1 || ts < r->last_ts)
        return 0;
    if (!r->dirty) {
        /* the source is now the most recently heard (the tracker evicts from the other end);
         * done once its first message is known to be ours */
        PyObject *res = PyObject_CallOneArg(L->move_to_end, src);
        if (res == NULL)
            return -1;
        Py_DECREF(res);
    }
    r->last_seq = seq;
    r->last_ts = ts;
    r->dirty = 1;
    return 1;
}

static int seg_put(const unsigned char *seg, Py_ssize_t len, void *arg);
struct entry;
static int entry_segments(const struct entry *e,
                          int (*f)(const unsigned char *, Py_ssize_t, void *), void *arg);

/* v in decimal at out (at most 20 digits); returns the length. snprintf was about 7 % of the
 * loop's time for fragmented messages in a profile. */
static Py_ssize_t decimal(char *out, uint64_t v)
{
    char tmp[20];
    Py_ssize_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (Py_ssize_t k = 0; k < n; k++)
        out[k] = tmp[n - 1 - k];
    return n;
}

/* One message line; seq and ts as given (digits) or, when m->seq is NULL, formatted; the text
 * is m->text, or the pieces of e (text_len bytes, the final newline left out) when e is set. */
static int put_line(struct loop *L, PyObject *prefix, PyObject *prio, const struct parsed *m,
                    const struct entry *e, Py_ssize_t text_len)
{
    char num[2][24];
    const unsigned char *seq = m->seq, *ts = m->ts;
    Py_ssize_t seq_len = m->seq_len, ts_len = m->ts_len;
    if (seq == NULL) {
        seq_len = decimal(num[0], m->seq_v);
        ts_len = decimal(num[1], m->ts_v);
        seq = (const unsigned char *)num[0];
        ts = (const unsigned char *)num[1];
    }
    struct buf *out = &L->out;
    PyObject *idb = L->run.idb;
    Py_ssize_t need = PyBytes_GET_SIZE(prefix) + L->recv_n + m->rel_len + PyBytes_GET_SIZE(prio) +
                      2 * seq_len + ts_len + m->text_len + text_len + PyBytes_GET_SIZE(idb) +
                      pieces_len + 8;
    if (reserve(out, need) < 0)
        return -1;
    put(out, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix));
    put(out, L->recv_s, L->recv_n);
    if (m->rel == NULL) {
        PUT_PIECE(out, NO_RELEASE);
    } else {
        PUT_PIECE(out, RELEASE_OPEN);
        put(out, m->rel, m->rel_len);
        put(out, "\"", 1);
    }
    put(out, PyBytes_AS_STRING(prio), PyBytes_GET_SIZE(prio));
    put(out, seq, seq_len);
    PUT_PIECE(out, TS);
    put(out, ts, ts_len);
    if (m->cont)
        PUT_PIECE(out, CONT_TRUE);
    else
        PUT_PIECE(out, CONT_FALSE);
    if (e == NULL) {
        put(out, m->text, m->text_len);
    } else {
        Py_ssize_t before = out->len;
        entry_segments(e, seg_put, out);
        out->len = before + text_len; /* without the newline */
    }
    PUT_PIECE(out, TAIL);
    put(out, PyBytes_AS_STRING(idb), PyBytes_GET_SIZE(idb));
    put(out, seq, seq_len);
    PUT_PIECE(out, END);
    return 0;
}

/* A reassembled message of the common shape: one line of safe text ending with a newline,
 * checked piece by piece (the last byte of the last piece is the newline). */
struct shape {
    Py_ssize_t left; /* bytes still to come */
    const unsigned char *first;
};

static int seg_common(const unsigned char *seg, Py_ssize_t len, void *arg)
{
    struct shape *sh = arg;
    if (sh->first == NULL && len > 0)
        sh->first = seg;
    sh->left -= len;
    if (sh->left == 0)
        return (len < 1 || seg[len - 1] != '\n' || !all_safe(seg, len - 1)) ? 1 : 0;
    return all_safe(seg, len) ? 0 : 1;
}

/* A needle of the crash rule found in the body, also across two pieces. */
struct search {
    const unsigned char *needle;
    Py_ssize_t m, rare, tail_len;
    unsigned char tail[128]; /* the last m-1 bytes seen, then the next piece's first m-1 */
};

static int seg_search(const unsigned char *seg, Py_ssize_t len, void *arg)
{
    struct search *q = arg;
    Py_ssize_t m = q->m;
    if (contains(seg, len, q->needle, m, q->rare))
        return 1;
    Py_ssize_t head = len < m - 1 ? len : m - 1;
    memcpy(q->tail + q->tail_len, seg, (size_t)head);
    if (contains(q->tail, q->tail_len + head, q->needle, m, q->rare))
        return 1;
    /* keep the last m-1 bytes of everything so far */
    Py_ssize_t have = q->tail_len + head;
    if (len >= m - 1) {
        memcpy(q->tail, seg + len - (m - 1), (size_t)(m - 1));
        q->tail_len = m - 1;
    } else if (have > m - 1) {
        memmove(q->tail, q->tail + have - (m - 1), (size_t)(m - 1));
        q->tail_len = m - 1;
    } else {
        q->tail_len = have;
    }
    return 0;
}

/* crash rule may_open over the pieces of a message (first byte, needles across pieces). */
static int may_open_entry(const struct crash_rule *c, const struct entry *e,
                          const unsigned char *first, Py_ssize_t text_len)
{
    if (c->first == NULL)
        return 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(c->needles); k++) {
        PyObject *needle = PyTuple_GET_ITEM(c->needles, k);
        struct search q;
        q.needle = (const unsigned char *)PyBytes_AS_STRING(needle);
        q.m = PyBytes_GET_SIZE(needle);
        q.rare = c->rare[k];
        q.tail_len = 0;
        if (q.m == 0 || q.m > 64 || entry_segments(e, seg_search, &q))
            return 1;
    }
    return text_len > 0 && (long)(e->prio & 7) <= c->max_level && c->first[*first];
}

static int seg_put(const unsigned char *seg, Py_ssize_t len, void *arg)
{
    put(arg, seg, len);
    return 0;
}

/* A message that completed here (pieces sorted): written when it is of the common shape and
 * in sequence (1), else its done object goes to the ready list (0); -1 error. e is freed. */
static int completed(struct loop *L, Reasm *t, struct entry *e, PyObject *src, PyObject *prefix,
                     PyObject *prio_tab)
{
    PyObject *prio = PyTuple_GET_ITEM(prio_tab, e->prio & 255);
    struct shape sh = {0, NULL};
    entry_segments(e, seg_len, &sh.left);
    Py_ssize_t text_len = sh.left - 1;
    int ok = PyList_GET_SIZE(t->ready) == 0 && e->header == NULL && PyBytes_Check(prio) &&
             sh.left > 0 && entry_segments(e, seg_common, &sh) == 0 &&
             !may_open_entry(&L->crash, e, sh.first, text_len);
    if (ok)
        ok = run_for(L, src);
    if (ok > 0)
        ok = in_sequence(L, src, e->seq, e->ts);
    if (ok < 0) {
        entry_free(e);
        return -1;
    }
    if (ok == 0) /* complete: give_up finds it so, and hands it over with no reason */
        return give_up(t, e, s_empty);
    /* the line with an empty text, then the text put in piece by piece before its tail */
    struct parsed m = {NULL, NULL, NULL, (const unsigned char *)"", 0, 0, 0, 0, e->prio, e->cont,
                       e->seq, e->ts};
    if (reserve(&L->out, text_len + 1) < 0 || put_line(L, prefix, prio, &m, e, text_len) < 0) {
        entry_free(e);
        return -1;
    }
    entry_free(e);
    return 1;
}

/* Counts of one call: messages written, bytes, fragments taken, of them reassembled. */
struct tally {
    Py_ssize_t count, fragments, reassembled;
};

/* One fragment datagram: 1 taken and nothing waits in the ready list, 0 taken and the caller
 * must stop after it, 2 not taken (left to Python), -1 error. */
static int fragment(struct loop *L, Reasm *t, PyObject *data, PyObject *key, PyObject *info,
                    PyObject *prio_tab, double now, PyObject *frag_keys, PyObject *done_keys,
                    struct tally *n)
{
    struct piece p = {NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, now};
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t at = parse_frag(d, PyBytes_GET_SIZE(data), t->max_total, &p);
    if (at == 0 || info == NULL)
        return 2;
    PyObject *src = PyTuple_GET_ITEM(info, 0), *prefix = PyTuple_GET_ITEM(info, 1);
    p.src = src;
    p.body = data;
    p.start = at;
    p.len = PyBytes_GET_SIZE(data) - at;
    struct entry *e = NULL;
    int r = frag_add(t, &p, &e);
    if (r < 0 || (frag_keys != Py_None && PyList_Append(frag_keys, key) < 0)) {
        if (r == 1)
            entry_free(e);
        return -1;
    }
    n->fragments++;
    if (r == 1) {
        r = completed(L, t, e, src, prefix, prio_tab);
        if (r < 0)
            return -1;
        if (r == 1) {
            n->count++;
            n->reassembled++;
            if (done_keys != Py_None && PyList_Append(done_keys, key) < 0)
                return -1;
        }
    }
    return PyList_GET_SIZE(t->ready) == 0;
}

/* The message names the release its stream named last (sources.in_sequence): 1 yes, 0 not (or
 * the stream has none yet: the general path notes it), -1 error. */
static int same_release(const struct run *r, const struct parsed *m)
{
    if (r->release == NULL || r->release == Py_None)
        return 0;
    Py_ssize_t n;
    const char *rel = PyUnicode_AsUTF8AndSize(r->release, &n);
    if (rel == NULL)
        return -1;
    return n == m->rel_len && memcmp(rel, m->rel, (size_t)n) == 0;
}

/* One single-datagram message: 1 written, 0 left to Python, -1 error. */
static int single(struct loop *L, PyObject *data, PyObject *info, PyObject *prio_tab)
{
    struct parsed m;
    if (!parse((const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &m))
        return 0;
    PyObject *prio = PyTuple_GET_ITEM(prio_tab, m.prio);
    if (info == NULL || prio == Py_None || !PyBytes_Check(prio) ||
        may_open(&L->crash, m.prio & 7, m.text, m.text_len))
        return 0;
    PyObject *src = PyTuple_GET_ITEM(info, 0);
    int r = run_for(L, src);
    if (r > 0 && m.rel != NULL)
        r = same_release(&L->run, &m);
    if (r > 0)
        r = in_sequence(L, src, m.seq_v, m.ts_v);
    if (r <= 0)
        return r;
    return put_line(L, PyTuple_GET_ITEM(info, 1), prio, &m, NULL, 0) < 0 ? -1 : 1;
}

static PyObject *common(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 15) {
        PyErr_SetString(PyExc_TypeError, "common() takes 15 arguments");
        return NULL;
    }
    PyObject *payloads = args[0], *keys = args[1], *sources = args[3], *prio_tab = args[5],
             *received = args[7], *parts = args[8], *frags = args[11], *frag_keys = args[13],
             *done_keys = args[14];
    struct loop L = {args[4], args[6], args[9], 0, {NULL, NULL, 0, {0}},
                     {NULL, NULL, NULL, NULL, 0, 0, 0}, {NULL, 0, 0}, 0, NULL, 0};
    if (!PyList_Check(payloads) || !PyList_Check(keys) || !PyDict_Check(sources) ||
        !PyDict_Check(L.states) || !PyTuple_Check(prio_tab) || PyTuple_GET_SIZE(prio_tab) != 256 ||
        !PyDict_Check(L.crashing) || !PyBytes_Check(received) || !PyList_Check(parts) ||
        (frags != Py_None && !PyObject_TypeCheck(frags, &ReasmType)) ||
        (frag_keys != Py_None && !PyList_Check(frag_keys)) ||
        (done_keys != Py_None && !PyList_Check(done_keys))) {
        PyErr_SetString(PyExc_TypeError, "common(): wrong argument types");
        return NULL;
    }
    if (crash_rule_from(args[10], &L.crash) < 0)
        return NULL;
    double now = PyFloat_AsDouble(args[12]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    Py_ssize_t i = PyLong_AsSsize_t(args[2]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (pieces[0] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "common(): set_line() was not called");
        return NULL;
    }
    Py_ssize_t total = PyList_GET_SIZE(payloads);
    if (PyList_GET_SIZE(keys) != total) {
        PyErr_SetString(PyExc_ValueError, "common(): payloads and keys differ in length");
        return NULL;
    }
    struct tally n = {0, 0, 0};
    L.out = buf_take(&L.out_owned);
    L.recv_s = PyBytes_AS_STRING(received);
    L.recv_n = PyBytes_GET_SIZE(received);
    /* a crash report opens only in the Python loop, so this holds for the whole call */
    L.check_crashing = PyDict_GET_SIZE(L.crashing) > 0;

    for (; i < total; i++) {
        PyObject *data = PyList_GET_ITEM(payloads, i), *key = PyList_GET_ITEM(keys, i);
        if (!PyBytes_Check(data))
            break;
        PyObject *info = PyDict_GetItemWithError(sources, key);
        if (info == NULL && PyErr_Occurred())
            goto error;
        if (info != NULL && (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) != 2 ||
                             !PyBytes_Check(PyTuple_GET_ITEM(info, 1))))
            info = NULL;
        int r = single(&L, data, info, prio_tab);
        if (r < 0)
            goto error;
        if (r == 1) {
            n.count++;
            continue;
        }
        if (frags == Py_None)
            break;
        r = fragment(&L, (Reasm *)frags, data, key, info, prio_tab, now, frag_keys, done_keys, &n);
        if (r < 0)
            goto error;
        if (r == 2)
            break;
        if (r == 0) {
            i++;
            break;
        }
    }
    if (run_end(&L.run) < 0)
        goto error;
    if (L.out.len) {
        PyObject *chunk = PyBytes_FromStringAndSize(L.out.data, L.out.len);
        if (chunk == NULL)
            goto error;
        int r = PyList_Append(parts, chunk);
        Py_DECREF(chunk);
        if (r < 0)
            goto error;
    }
    buf_give_back(&L.out, L.out_owned);
    return Py_BuildValue("(nnnnn)", i, n.count, L.out.len, n.fragments, n.reassembled);

error:
    Py_XDECREF(L.run.idb);
    Py_XDECREF(L.run.release);
    buf_give_back(&L.out, L.out_owned);
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
        /* a sender's datagrams come in runs: one address object per run, whose hash is
         * computed once for all the dict look-ups after */
        const char *name = (const char *)names.buf + i * step;
        PyObject *a;
        if (i > 0 && memcmp(name, name - step, (size_t)namelen) == 0) {
            a = PyList_GET_ITEM(addrs, i - 1);
            Py_INCREF(a);
        } else {
            a = PyBytes_FromStringAndSize(name, namelen);
            if (a == NULL)
                goto done;
        }
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

/* set_line(pieces): the constant pieces of a message line (fastpath.LINE_PIECES). */
static PyObject *set_line(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyTuple_Check(arg) || PyTuple_GET_SIZE(arg) != N_PIECES) {
        PyErr_Format(PyExc_TypeError, "set_line(): a tuple of %d bytes expected", N_PIECES);
        return NULL;
    }
    Py_ssize_t len = 0;
    for (int k = 0; k < N_PIECES; k++) {
        PyObject *p = PyTuple_GET_ITEM(arg, k);
        if (!PyBytes_Check(p)) {
            PyErr_SetString(PyExc_TypeError, "set_line(): pieces must be bytes");
            return NULL;
        }
        len += PyBytes_GET_SIZE(p);
    }
    for (int k = 0; k < N_PIECES; k++) {
        Py_INCREF(PyTuple_GET_ITEM(arg, k));
        Py_XSETREF(pieces[k], PyTuple_GET_ITEM(arg, k));
    }
    pieces_len = len;
    Py_RETURN_NONE;
}

/* ---- the forwarding process's spool records ------------------------------------------------
 *
 * frame_lines(data, events) -> (records, count, used): the whole lines of data (up to its last
 * newline, ``used`` bytes) that a forwarder spools, each framed as spool.py stores a record
 * (u32 length, u32 CRC-32 of the payload, both little endian, then the payload), one after the
 * other in ``records``. The compiled form of sinks/reliable.py's frame_lines, the reference. */

/* CRC-32 as zlib.crc32 computes it (spool.py checks records with it when reading them back):
 * reflected, polynomial 0xEDB88320, sixteen bytes at a time ("slicing by 16": table t gives the
 * CRC of a byte followed by t zero bytes). For records of a few hundred bytes this is faster
 * than calling zlib's own, whose setup pays off on long ones. */
static uint32_t crc_table[16][256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 16; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static inline uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t crc32_of(const unsigned char *p, Py_ssize_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (; n >= 16; p += 16, n -= 16) {
        uint32_t w0 = c ^ le32(p), w1 = le32(p + 4), w2 = le32(p + 8), w3 = le32(p + 12);
        c = crc_table[15][w0 & 0xff] ^ crc_table[14][(w0 >> 8) & 0xff] ^
            crc_table[13][(w0 >> 16) & 0xff] ^ crc_table[12][w0 >> 24] ^
            crc_table[11][w1 & 0xff] ^ crc_table[10][(w1 >> 8) & 0xff] ^
            crc_table[9][(w1 >> 16) & 0xff] ^ crc_table[8][w1 >> 24] ^
            crc_table[7][w2 & 0xff] ^ crc_table[6][(w2 >> 8) & 0xff] ^
            crc_table[5][(w2 >> 16) & 0xff] ^ crc_table[4][w2 >> 24] ^
            crc_table[3][w3 & 0xff] ^ crc_table[2][(w3 >> 8) & 0xff] ^
            crc_table[1][(w3 >> 16) & 0xff] ^ crc_table[0][w3 >> 24];
    }
    while (n-- > 0)
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put_u32le(unsigned char *o, uint32_t v)
{
    o[0] = (unsigned char)v;
    o[1] = (unsigned char)(v >> 8);
    o[2] = (unsigned char)(v >> 16);
    o[3] = (unsigned char)(v >> 24);
}

#define LINE_MESSAGE "{\"type\":\"message\""
#define LINE_FORWARD "{\"type\":\"forward\""

static int starts(const unsigned char *p, Py_ssize_t n, const char *prefix, Py_ssize_t k)
{
    return n >= k && memcmp(p, prefix, (size_t)k) == 0;
}

/* Frame the kept lines of d[0:used] into out; the number of records. */
static Py_ssize_t frame_into(const unsigned char *d, Py_ssize_t used, int events,
                             unsigned char *out, Py_ssize_t *out_len)
{
    Py_ssize_t count = 0, o = 0;
    const unsigned char *p = d, *end = d + used;
    while (p < end) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        Py_ssize_t n = nl - p;
        if (starts(p, n, LINE_MESSAGE, sizeof(LINE_MESSAGE) - 1) ||
            (events && n > 0 && !starts(p, n, LINE_FORWARD, sizeof(LINE_FORWARD) - 1))) {
            put_u32le(out + o, (uint32_t)n);
            put_u32le(out + o + 4, crc32_of(p, n));
            memcpy(out + o + 8, p, (size_t)n);
            o += 8 + n;
            count++;
        }
        p = nl + 1;
    }
    *out_len = o;
    return count;
}

static PyObject *frame_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "frame_lines(data, events)");
        return NULL;
    }
    int events = PyObject_IsTrue(args[1]);
    if (events < 0)
        return NULL;
    Py_buffer data;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *d = data.buf;
    Py_ssize_t used = 0, lines = 0;
    for (const unsigned char *p = d, *end = d + data.len;
         (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) {
        lines++;
        used = p + 1 - d;
    }
    if (lines > (PY_SSIZE_T_MAX - used) / 8) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_OverflowError, "frame_lines(): data too large");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, used + 8 * lines);
    if (out == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    Py_ssize_t count, out_len;
    Py_BEGIN_ALLOW_THREADS
    count = frame_into(d, used, events, (unsigned char *)PyBytes_AS_STRING(out), &out_len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    if (_PyBytes_Resize(&out, out_len) < 0)
        return NULL;
    return Py_BuildValue("Nnn", out, count, used);
}

/* ---- a spooled message line as RFC 5424 (sinks/forward.py syslog_line) -----------------------
 *
 * syslog_from_json(record, pen) -> bytes or None
 *
 * The delivery process turns every spooled JSON line back into a Message and formats it, about
 * 11 us of Python per message. Here a line of the shape the receive loops write (the keys in
 * JsonSink.encode's order, every string plain ASCII without escapes, integers where the
 * extended format has them, no raw bytes, not incomplete) becomes the same RFC 5424 line in
 * one pass; anything else is None and goes through Python. tests/unit/test_receiver_output.py
 * holds the two to the same bytes. `pen` is SD_PEN. */

struct jcur {
    const unsigned char *p, *end;
};

static int lit(struct jcur *c, const char *s, Py_ssize_t n)
{
    if (!starts(c->p, c->end - c->p, s, n))
        return 0;
    c->p += n;
    return 1;
}
#define LIT(c, s) lit(c, s, sizeof(s) - 1)

/* A JSON string's contents up to its closing quote, when they are plain (safe_text) bytes. */
static int jstr(struct jcur *c, const unsigned char **s, Py_ssize_t *n)
{
    const unsigned char *q = memchr(c->p, '"', (size_t)(c->end - c->p));
    if (q == NULL || !all_safe(c->p, q - c->p))
        return 0;
    *s = c->p;
    *n = q - c->p;
    c->p = q + 1;
    return 1;
}

/* A JSON integer as Python prints it: 0, or at most 20 digits without a leading zero (digits()
 * stops at 20: a longer one fails the literal that follows every number); *v its value. */
static int jnum(struct jcur *c, const unsigned char **s, Py_ssize_t *n, uint64_t *v)
{
    const unsigned char *q = digits(c->p, c->end, v);
    Py_ssize_t k = q - c->p;
    if (k == 0 || (k > 1 && *c->p == '0'))
        return 0;
    *s = c->p;
    *n = k;
    c->p = q;
    return 1;
}

static unsigned two(const unsigned char *s)
{
    return (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" that the Python path gives back unchanged: epoch() then
 * IsoTime. A time it would refuse (a day past its month, a leap second) or could move by a
 * microsecond (before 1970; from 2^33 seconds, in 2242, a float's step is over a microsecond)
 * is left to it. */
static int iso_ok(const unsigned char *s, Py_ssize_t n)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != (Py_ssize_t)sizeof(shape) - 1)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (shape[i] == 'd' ? (unsigned)(s[i] - '0') > 9 : s[i] != (unsigned char)shape[i])
            return 0;
    uint64_t year;
    digits(s, s + 4, &year);
    unsigned month = two(s + 5), day = two(s + 8);
    if (year < 1970 || year > 2199 || month < 1 || month > 12 || day < 1 || two(s + 11) > 23 ||
        two(s + 14) > 59 || two(s + 17) > 59)
        return 0;
    unsigned leap = month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    return day <= mdays[month - 1] + leap;
}

/* sd_value(): '"', '\' and ']' escaped; plain JSON strings have only ']'. */
static void put_sd(struct buf *b, const unsigned char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == ']')
            b->data[b->len++] = '\\';
        b->data[b->len++] = (char)s[i];
    }
}

/* sd_name(): at most 32 characters, '=', ']', '"' and space as '_', "_" when empty. */
static void put_sd_name(struct buf *b, const unsigned char *s, Py_ssize_t n)
{
    if (n == 0)
        b->data[b->len++] = '_';
    for (Py_ssize_t i = 0; i < n && i < 32; i++)
        b->data[b->len++] = s[i] == '=' || s[i] == ']' || s[i] == '"' || s[i] == ' '
                                ? '_' : (char)s[i];
}

#define PUTS(b, s) put(b, s, sizeof(s) - 1)

/* The parts of a spooled message line of the receive loops' shape (see syslog_from_json). */
struct spooled {
    const unsigned char *host, *port, *rcv, *rel, *fac, *lvl, *seq, *ts, *text, *id;
    Py_ssize_t host_n, port_n, rcv_n, rel_n, fac_n, lvl_n, seq_n, ts_n, text_n, id_n;
    uint64_t port_v, facility, level, seq_v, ts_v;
    int cont;
    /* the fields: at most this many, each a key and a value */
#define MAX_FIELDS 256
    const unsigned char *fk[MAX_FIELDS], *fv[MAX_FIELDS];
    Py_ssize_t fk_n[MAX_FIELDS], fv_n[MAX_FIELDS], nf;
};

/* 1 when d[0:len] is such a line (its parts in *m), else 0. */
static int parse_spooled(const unsigned char *d, Py_ssize_t len, struct spooled *m)
{
    struct jcur c = {d, d + len};
    m->rel = NULL;
    m->rel_n = 0;
    m->nf = 0;
    if (!LIT(&c, "{\"type\":\"message\",\"host\":\"") || !jstr(&c, &m->host, &m->host_n) ||
        !LIT(&c, ",\"port\":") || !jnum(&c, &m->port, &m->port_n, &m->port_v) ||
        !LIT(&c, ",\"received\":\"") || !jstr(&c, &m->rcv, &m->rcv_n) ||
        !iso_ok(m->rcv, m->rcv_n) || !LIT(&c, ",\"release\":"))
        return 0;
    if (!LIT(&c, "null") && !(LIT(&c, "\"") && jstr(&c, &m->rel, &m->rel_n)))
        return 0;
    if (!LIT(&c, ",\"facility\":") || !jnum(&c, &m->fac, &m->fac_n, &m->facility) ||
        m->fac_n > 3 || !LIT(&c, ",\"level\":") || !jnum(&c, &m->lvl, &m->lvl_n, &m->level) ||
        m->lvl_n > 3 || !LIT(&c, ",\"seq\":") || !jnum(&c, &m->seq, &m->seq_n, &m->seq_v) ||
        !LIT(&c, ",\"ts_usec\":") || !jnum(&c, &m->ts, &m->ts_n, &m->ts_v) ||
        !LIT(&c, ",\"cont\":"))
        return 0;
    if (LIT(&c, "true"))
        m->cont = 1;
    else if (LIT(&c, "false"))
        m->cont = 0;
    else
        return 0;
    if (!LIT(&c, ",\"text\":\"") || !jstr(&c, &m->text, &m->text_n) ||
        !LIT(&c, ",\"fields\":{"))
        return 0;
    if (!LIT(&c, "}")) {
        do {
            Py_ssize_t nf = m->nf;
            if (nf == MAX_FIELDS || !LIT(&c, "\"") || !jstr(&c, &m->fk[nf], &m->fk_n[nf]) ||
                !LIT(&c, ":\"") || !jstr(&c, &m->fv[nf], &m->fv_n[nf]))
                return 0;
            for (Py_ssize_t k = 0; k < nf; k++) /* json.loads keeps the last of a pair */
                if (m->fk_n[k] == m->fk_n[nf] && memcmp(m->fk[k], m->fk[nf], (size_t)m->fk_n[k]) == 0)
                    return 0;
            m->nf++;
        } while (LIT(&c, ","));
        if (!LIT(&c, "}"))
            return 0;
    }
    const unsigned char *name;
    Py_ssize_t name_n;
    if (!LIT(&c, ",") || (LIT(&c, "\"name\":\"") && !(jstr(&c, &name, &name_n) && LIT(&c, ","))))
        return 0;
    return LIT(&c, "\"incomplete\":false,\"id\":\"") && jstr(&c, &m->id, &m->id_n) &&
           LIT(&c, "}") && c.p == c.end;
}

static PyObject *syslog_from_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "syslog_from_json(record: bytes, pen: bytes)");
        return NULL;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    struct spooled m;
    if (!parse_spooled((const unsigned char *)PyBytes_AS_STRING(args[0]), len, &m) ||
        m.host_n == 0 || m.host_n > 255 || memchr(m.host, ' ', (size_t)m.host_n))
        Py_RETURN_NONE;

    const unsigned char *pen = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t pen_n = PyBytes_GET_SIZE(args[1]);
    /* the host three times (twice escaped), the rest at most twice, the constant pieces */
    PyObject *out = PyBytes_FromStringAndSize(NULL, 3 * len + 4 * pen_n + 256);
    if (out == NULL)
        return NULL;
    struct buf b = {PyBytes_AS_STRING(out), 0, 0};
    char num[24];
    b.data[b.len++] = '<';
    put(&b, num, decimal(num, (m.facility > 23 ? 23 : m.facility) * 8 + m.level));
    PUTS(&b, ">1 ");
    put(&b, m.rcv, m.rcv_n);
    b.data[b.len++] = ' ';
    put(&b, m.host, m.host_n); /* _hostname(): no byte of it changes a plain host without space */
    PUTS(&b, " kernel - netconsole [origin ip=\"");
    put_sd(&b, m.host, m.host_n);
    PUTS(&b, "\"][netconsole@");
    put(&b, pen, pen_n);
    PUTS(&b, " port=\"");
    put(&b, m.port, m.port_n);
    PUTS(&b, "\" seq=\"");
    put(&b, m.seq, m.seq_n);
    PUTS(&b, "\" ts_usec=\"");
    put(&b, m.ts, m.ts_n);
    PUTS(&b, "\" cont=\"");
    b.data[b.len++] = m.cont ? '1' : '0';
    b.data[b.len++] = '"';
    if (m.rel != NULL) {
        PUTS(&b, " release=\"");
        put_sd(&b, m.rel, m.rel_n);
        b.data[b.len++] = '"';
    }
    if (m.id_n) {
        PUTS(&b, " id=\"");
        put(&b, m.id, m.id_n);
        b.data[b.len++] = '"';
    }
    b.data[b.len++] = ']';
    if (m.nf) {
        PUTS(&b, "[fields@");
        put(&b, pen, pen_n);
        for (Py_ssize_t k = 0; k < m.nf; k++) {
            b.data[b.len++] = ' ';
            put_sd_name(&b, m.fk[k], m.fk_n[k]);
            PUTS(&b, "=\"");
            put_sd(&b, m.fv[k], m.fv_n[k]);
            b.data[b.len++] = '"';
        }
        b.data[b.len++] = ']';
    }
    b.data[b.len++] = ' ';
    put(&b, m.text, m.text_n);
    if (_PyBytes_Resize(&out, b.len) < 0)
        return NULL;
    return out;
}

/* ---- a spooled message line as an OTLP log record (sinks/otlp.py) ------------------------------
 *
 * otlp_from_json(record) -> bytes or None
 *
 * The same lines as syslog_from_json become what otlp.encode_message makes of them: the
 * serialised Resource of the sending host (u32 little-endian length first), then the serialised
 * LogRecord, field by field in field number order as protobuf writes them. Lines with a
 * sequence number or timestamp past int64 are None: Python gives those as strings; so are
 * levels past 7 and ports of more than five digits. */

static Py_ssize_t varint_len(uint64_t v)
{
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void put_varint(struct buf *b, uint64_t v)
{
    while (v >= 0x80) {
        b->data[b->len++] = (char)(v | 0x80);
        v >>= 7;
    }
    b->data[b->len++] = (char)v;
}

/* A length-delimited field: tag, length, bytes. */
static void put_field(struct buf *b, unsigned char tag, const void *s, Py_ssize_t n)
{
    b->data[b->len++] = (char)tag;
    put_varint(b, (uint64_t)n);
    put(b, s, n);
}

static Py_ssize_t field_len(Py_ssize_t n)
{
    return 1 + varint_len((uint64_t)n) + n;
}

/* KeyValue{key, value: AnyValue{string_value}} as a field of tag `tag`; `prefix` is put before
 * the key (netconsole.field.KEY). */
static void put_kv_str(struct buf *b, unsigned char tag, const char *prefix, Py_ssize_t prefix_n,
                       const unsigned char *k, Py_ssize_t k_n, const unsigned char *v,
                       Py_ssize_t v_n)
{
    Py_ssize_t any = field_len(v_n), kv = field_len(prefix_n + k_n) + field_len(any);
    b->data[b->len++] = (char)tag;
    put_varint(b, (uint64_t)kv);
    b->data[b->len++] = 0x0a; /* KeyValue.key */
    put_varint(b, (uint64_t)(prefix_n + k_n));
    put(b, prefix, prefix_n);
    put(b, k, k_n);
    b->data[b->len++] = 0x12; /* KeyValue.value */
    put_varint(b, (uint64_t)any);
    put_field(b, 0x0a, v, v_n); /* AnyValue.string_value */
}

/* KeyValue{key, value: AnyValue{int_value or bool_value (`any_tag` 0x18 or 0x10)}} as a
 * LogRecord attribute. */
static void put_kv_int(struct buf *b, const char *k, Py_ssize_t k_n, unsigned char any_tag,
                       uint64_t v)
{
    Py_ssize_t any = 1 + varint_len(v), kv = field_len(k_n) + field_len(any);
    b->data[b->len++] = 0x32;
    put_varint(b, (uint64_t)kv);
    put_field(b, 0x0a, k, k_n);
    b->data[b->len++] = 0x12;
    put_varint(b, (uint64_t)any);
    b->data[b->len++] = (char)any_tag;
    put_varint(b, v);
}
#define KV_STR(b, key, v, n) put_kv_str(b, 0x32, key, sizeof(key) - 1, NULL, 0, v, n)
#define KV_INT(b, key, v) put_kv_int(b, key, sizeof(key) - 1, 0x18, v)
#define KV_BOOL(b, key, v) put_kv_int(b, key, sizeof(key) - 1, 0x10, v)

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = y / 400, yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static const char severity_text[8][8] = {"emerg", "alert", "crit",   "err",
                                         "warning", "notice", "info", "debug"};
static const unsigned char severity_number[8] = {21, 19, 18, 17, 13, 10, 9, 5};

static PyObject *otlp_from_json(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "otlp_from_json(record: bytes)");
        return NULL;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(arg);
    struct spooled m;
    /* jnum reads up to 20 digits, whose value may wrap: 19 hold any int64 without */
    if (!parse_spooled((const unsigned char *)PyBytes_AS_STRING(arg), len, &m) || m.level > 7 ||
        m.port_n > 5 || m.seq_n > 19 || m.ts_n > 19 || m.seq_v > INT64_MAX || m.ts_v > INT64_MAX)
        Py_RETURN_NONE;
    /* host.name: the hostname userdata when it is there and not empty, else the address */
    const unsigned char *name = m.host;
    Py_ssize_t name_n = m.host_n;
    for (Py_ssize_t k = 0; k < m.nf; k++)
        if (m.fk_n[k] == 8 && memcmp(m.fk[k], "hostname", 8) == 0 && m.fv_n[k]) {
            name = m.fv[k];
            name_n = m.fv_n[k];
        }
    /* the line's bytes at most twice over, 64 more per field, 512 for the constant pieces */
    PyObject *out = PyBytes_FromStringAndSize(NULL, 4 * len + 64 * m.nf + 512);
    if (out == NULL)
        return NULL;
    struct buf b = {PyBytes_AS_STRING(out), 4, 0};

    /* Resource{attributes (field 1): host.name, host.ip = [address], service.name} */
    static const char service[] = "netconsole";
    put_kv_str(&b, 0x0a, "host.name", 9, NULL, 0, name, name_n);
    /* host.ip: AnyValue{array_value: ArrayValue{values: [AnyValue{string_value}]}} */
    Py_ssize_t ip_str = field_len(m.host_n), ip_arr = field_len(ip_str), ip_any = field_len(ip_arr);
    b.data[b.len++] = 0x0a;
    put_varint(&b, (uint64_t)(field_len(7) + field_len(ip_any)));
    put_field(&b, 0x0a, "host.ip", 7);
    b.data[b.len++] = 0x12;
    put_varint(&b, (uint64_t)ip_any);
    b.data[b.len++] = 0x2a; /* AnyValue.array_value */
    put_varint(&b, (uint64_t)ip_arr);
    b.data[b.len++] = 0x0a; /* ArrayValue.values */
    put_varint(&b, (uint64_t)ip_str);
    put_field(&b, 0x0a, m.host, m.host_n);
    put_kv_str(&b, 0x0a, "service.name", 12, NULL, 0, (const unsigned char *)service,
               sizeof(service) - 1);
    put_u32le((unsigned char *)b.data, (uint32_t)(b.len - 4));

    /* LogRecord */
    b.data[b.len++] = 0x10; /* severity_number */
    put_varint(&b, severity_number[m.level]);
    put_field(&b, 0x1a, severity_text[m.level], (Py_ssize_t)strlen(severity_text[m.level]));
    b.data[b.len++] = 0x2a; /* body: AnyValue{string_value} */
    put_varint(&b, (uint64_t)field_len(m.text_n));
    put_field(&b, 0x0a, m.text, m.text_n);
    if (m.id_n)
        KV_STR(&b, "log.record.uid", m.id, m.id_n);
    KV_INT(&b, "netconsole.port", m.port_v);
    KV_INT(&b, "netconsole.seq", m.seq_v);
    KV_INT(&b, "netconsole.ts_usec", m.ts_v);
    KV_INT(&b, "netconsole.facility", m.facility);
    KV_BOOL(&b, "netconsole.cont", (uint64_t)m.cont);
    if (m.rel != NULL)
        KV_STR(&b, "netconsole.release", m.rel, m.rel_n);
    static const char field_prefix[] = "netconsole.field.";
    for (Py_ssize_t k = 0; k < m.nf; k++)
        put_kv_str(&b, 0x32, field_prefix, sizeof(field_prefix) - 1, m.fk[k], m.fk_n[k], m.fv[k],
                   m.fv_n[k]);
    /* observed_time_unix_nano (fixed64): the receive time, to the microsecond */
    const unsigned char *t = m.rcv;
    uint64_t year;
    digits(t, t + 4, &year);
    int64_t secs = days_from_civil((int64_t)year, two(t + 5), two(t + 8)) * 86400 +
                   two(t + 11) * 3600 + two(t + 14) * 60 + two(t + 17);
    uint64_t usec;
    digits(t + 20, t + 26, &usec);
    uint64_t ns = ((uint64_t)secs * 1000000 + usec) * 1000;
    if (ns) { /* protobuf leaves out a field at its default */
        b.data[b.len++] = 0x59;
        for (int i = 0; i < 8; i++)
            b.data[b.len++] = (char)(ns >> (8 * i));
    }
    if (_PyBytes_Resize(&out, b.len) < 0)
        return NULL;
    return out;
}

static PyMethodDef methods[] = {
    {"set_line", (PyCFunction)set_line, METH_O,
     "Set the constant pieces of a message line (fastpath.LINE_PIECES)."},
    {"common", (PyCFunction)(void (*)(void))common, METH_FASTCALL,
     "Handle the common single-datagram messages of a batch from index start."},
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "Cut a recvmmsg batch into payloads and addresses."},
    {"frame_lines", (PyCFunction)(void (*)(void))frame_lines, METH_FASTCALL,
     "Frame the whole JSON lines a forwarder spools as spool records."},
    {"otlp_from_json", (PyCFunction)otlp_from_json, METH_O,
     "A spooled message line as an OTLP record (Resource and LogRecord), or None."},
    {"syslog_from_json", (PyCFunction)(void (*)(void))syslog_from_json, METH_FASTCALL,
     "A spooled message line of the common shape as RFC 5424, or None."},
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
    s_release = PyUnicode_InternFromString("release");
    s_timeout = PyUnicode_InternFromString("timeout");
    s_evicted = PyUnicode_InternFromString("evicted");
    s_limited = PyUnicode_InternFromString("limited");
    s_superseded = PyUnicode_InternFromString("superseded");
    s_shutdown = PyUnicode_InternFromString("shutdown");
    s_empty = PyUnicode_InternFromString("");
    crc_init();
    if (!s_last_seq || !s_last_ts || !s_counter || !s_use_msgid || !s_idb || !s_timeout ||
        !s_evicted || !s_limited || !s_superseded || !s_shutdown || !s_empty || !s_release)
        return NULL;
    if (PyType_Ready(&ReasmType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL)
        return NULL;
    Py_INCREF(&ReasmType);
    if (PyModule_AddObject(mod, "Reassembler", (PyObject *)&ReasmType) < 0) {
        Py_DECREF(&ReasmType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
