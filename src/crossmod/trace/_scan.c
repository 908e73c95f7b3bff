/*
 * crossmod.trace._scan: the two hot loops of `crossmod trace`, compiled.
 *
 * Owns nothing of its own: each function here is a line-for-line port of a pure-Python
 * reference that stays in the package and is what runs when this module is absent or
 * CROSSMOD_TRACE_PURE=1 is set:
 *
 *   walk_block  <- datpages.PageDecoder._walk_py   (ring-buffer pages -> Events)
 *   scan_chunk  <- text.TextReader._scan_chunk_py  (text lines -> Events)
 *   count_upto  <- analyze._count_upto_py          (events per name and CPU)
 *
 * Only the common path is here: a record or line whose decoded form is already in the
 * reader's caches becomes an Event without running any Python. Everything else (the
 * first sight of a record, field parsing, problems, stacks seen for the first time) is
 * a call back into the same Python methods the reference uses, so both paths produce the
 * same events and the same problems; tests/trace/test_scan_equivalence.py checks that on
 * every fixture, the shared recording, and hypothesis-generated junk.
 *
 * The text matcher reproduces, with explicit backtracking in the same order, the regular
 * expression text._CHUNK (lazy head over '-' positions; optional tgid group tried
 * first; optional latency flags of 6, 5 then 4 characters, then none). It handles text
 * whose characters all fit in one byte (PyUnicode_1BYTE_KIND); other chunks take the
 * Python path. Character classes (\w, \s, \d) come from Python's own `re` at bind time.
 *
 * Memory safety is checked by running the reader tests against a sanitizer build (all of
 * tests/trace but test_cli.py, whose capstone import cannot load under ASan):
 *   gcc -shared -fPIC -O1 -g -fsanitize=address,undefined $(python3-config --includes) \
 *       src/crossmod/trace/_scan.c -o src/crossmod/trace/_scan.cpython-311-x86_64-linux-gnu.so
 *   PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 \
 *   LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
 *       python -m pytest tests/trace --ignore tests/trace/test_cli.py
 * (then `pip install -e .` to put the normal build back).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

/* ---- the Event type: instances are built without running the dataclass __init__ ---- */

static PyTypeObject *event_type = NULL;
static Py_ssize_t off_ts, off_cpu, off_pid, off_comm, off_name, off_fields, off_stack;
static unsigned char is_word[256], is_space[256], is_digit[256];
static PyObject *stack_marker = NULL; /* text._STACK */
static int bound = 0;

static int slot_offset(PyObject *type, const char *name, Py_ssize_t *off)
{
    PyObject *d = PyObject_GetAttrString(type, name);
    if (d == NULL)
        return -1;
    if (!PyObject_TypeCheck(d, &PyMemberDescr_Type)) {
        Py_DECREF(d);
        PyErr_Format(PyExc_TypeError, "Event.%s is not a slot", name);
        return -1;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX && m->type != T_OBJECT) {
        Py_DECREF(d);
        PyErr_Format(PyExc_TypeError, "Event.%s is not an object slot", name);
        return -1;
    }
    *off = m->offset;
    Py_DECREF(d);
    return 0;
}

/* bind(Event, word_table, space_table, digit_table, stack_marker) */
static PyObject *bind(PyObject *self, PyObject *args)
{
    PyObject *type, *marker;
    Py_buffer w, s, d;
    if (!PyArg_ParseTuple(args, "O!y*y*y*O", &PyType_Type, &type, &w, &s, &d, &marker))
        return NULL;
    PyObject *ret = NULL;
    if (w.len != 256 || s.len != 256 || d.len != 256) {
        PyErr_SetString(PyExc_ValueError, "character tables must have 256 entries");
        goto out;
    }
    if (slot_offset(type, "ts", &off_ts) || slot_offset(type, "cpu", &off_cpu)
        || slot_offset(type, "pid", &off_pid) || slot_offset(type, "comm", &off_comm)
        || slot_offset(type, "name", &off_name) || slot_offset(type, "fields", &off_fields)
        || slot_offset(type, "stack", &off_stack))
        goto out;
    memcpy(is_word, w.buf, 256);
    memcpy(is_space, s.buf, 256);
    memcpy(is_digit, d.buf, 256);
    for (int c = 0; c < 256; c++) {
        /* the digit -> value conversions below assume \d is ASCII 0-9 in this range */
        if (is_digit[c] != (c >= '0' && c <= '9')) {
            PyErr_SetString(PyExc_ValueError, "\\d is not ASCII 0-9 in the 1-byte range");
            goto out;
        }
    }
    Py_INCREF(type);
    Py_XSETREF(event_type, (PyTypeObject *)type);
    Py_INCREF(marker);
    Py_XSETREF(stack_marker, marker);
    bound = 1;
    ret = Py_NewRef(Py_None);
out:
    PyBuffer_Release(&w);
    PyBuffer_Release(&s);
    PyBuffer_Release(&d);
    return ret;
}

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* Event(ts, cpu, pid, comm, name, fields) with stack None; steals `ts`. */
static PyObject *new_event(PyObject *ts, PyObject *cpu, PyObject *pid, PyObject *comm,
                           PyObject *name, PyObject *fields)
{
    PyObject *ev = event_type->tp_alloc(event_type, 0);
    if (ev == NULL) {
        Py_DECREF(ts);
        return NULL;
    }
    SLOT(ev, off_ts) = ts;
    SLOT(ev, off_cpu) = Py_NewRef(cpu);
    SLOT(ev, off_pid) = Py_NewRef(pid);
    SLOT(ev, off_comm) = Py_NewRef(comm);
    SLOT(ev, off_name) = Py_NewRef(name);
    SLOT(ev, off_fields) = Py_NewRef(fields);
    SLOT(ev, off_stack) = Py_NewRef(Py_None);
    /* An Event refers to strs, ints, tuples and a shared fields dict, none of which
     * refers back to it: it can never be part of a reference cycle, so the cyclic GC
     * need not walk it (tracked, millions of them cost ~15 % of the scan in collections
     * that can free nothing). Reference counting still frees them. */
    PyObject_GC_UnTrack(ev);
    return ev;
}

static PyObject *int128_to_py(__int128 v)
{
    if (v >= (__int128)LLONG_MIN && v <= (__int128)LLONG_MAX)
        return PyLong_FromLongLong((long long)v);
    /* junk can push a running time stamp past 64 bits; Python's ints do not wrap */
    int neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-v) : (unsigned __int128)v;
    PyObject *hi = PyLong_FromUnsignedLongLong((unsigned long long)(u >> 64));
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)u);
    PyObject *sh = PyLong_FromLong(64);
    PyObject *r = NULL, *t = NULL;
    if (hi && lo && sh && (t = PyNumber_Lshift(hi, sh)) != NULL)
        r = PyNumber_Or(t, lo);
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(sh);
    Py_XDECREF(t);
    if (r && neg)
        Py_SETREF(r, PyNumber_Negative(r));
    return r;
}


/* ------------------------ a memo of byte strings -> Python objects ----------------------- */

/*
 * LineCache: what the readers' dict caches hold (record bytes -> decoded record, a text
 * line's header or body -> its parse), keyed by the bytes themselves so that a hit needs
 * no Python object for the key: no allocation, no SipHash, no str. Values are only ever
 * results the Python side computed for the same bytes, so a hit returns exactly what the
 * dict or the parser would. Open addressing, at most CACHE_MAX entries (then misses go to
 * the dicts as before); `clear()` when what the bytes mean changes (the text reader's
 * cpumask convention).
 */
#define CACHE_SLOTS (1 << 17)
#define CACHE_MAX (1 << 16)

typedef struct {
    uint64_t hash;
    Py_ssize_t len;
    char *key;
    PyObject *value;
} CacheEntry;

typedef struct {
    PyObject_HEAD
    CacheEntry *slots;
    Py_ssize_t count;
} LineCache;

static inline uint64_t hash_bytes(const unsigned char *p, Py_ssize_t n)
{
    /* FNV-1a over 8-byte words, then a final mix; keys are short and not adversarial
     * beyond costing a probe (collisions are resolved by comparing the bytes) */
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static PyObject *cache_get(LineCache *c, const unsigned char *p, Py_ssize_t n, uint64_t *hp)
{
    uint64_t h = hash_bytes(p, n);
    *hp = h;
    for (size_t i = h & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
        CacheEntry *e = &c->slots[i];
        if (e->key == NULL)
            return NULL;
        if (e->hash == h && e->len == n && memcmp(e->key, p, n) == 0)
            return e->value; /* borrowed */
    }
}

/* remember `value` for the bytes (a no-op once full); 0 or -1 on no memory */
static int cache_put(LineCache *c, const unsigned char *p, Py_ssize_t n, uint64_t h,
                     PyObject *value)
{
    if (c->count >= CACHE_MAX)
        return 0;
    size_t i = h & (CACHE_SLOTS - 1);
    while (c->slots[i].key != NULL)
        i = (i + 1) & (CACHE_SLOTS - 1);
    char *key = PyMem_Malloc(n ? n : 1);
    if (key == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(key, p, n);
    c->slots[i] = (CacheEntry){h, n, key, Py_NewRef(value)};
    c->count++;
    return 0;
}

static void cache_clear_entries(LineCache *c)
{
    if (c->slots == NULL)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        CacheEntry *e = &c->slots[i];
        if (e->key != NULL) {
            PyMem_Free(e->key);
            Py_CLEAR(e->value);
            e->key = NULL;
        }
    }
    c->count = 0;
}

static PyObject *cache_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kw != NULL && PyDict_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "LineCache() takes no arguments");
        return NULL;
    }
    LineCache *c = (LineCache *)type->tp_alloc(type, 0);
    if (c == NULL)
        return NULL;
    c->slots = PyMem_Calloc(CACHE_SLOTS, sizeof(CacheEntry));
    if (c->slots == NULL) {
        Py_DECREF(c);
        return PyErr_NoMemory();
    }
    return (PyObject *)c;
}

static void cache_dealloc(LineCache *c)
{
    cache_clear_entries(c);
    PyMem_Free(c->slots);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *cache_clear(LineCache *c, PyObject *unused)
{
    cache_clear_entries(c);
    Py_RETURN_NONE;
}

static Py_ssize_t cache_len(LineCache *c) { return c->count; }

static PyMethodDef cache_methods[] = {
    {"clear", (PyCFunction)cache_clear, METH_NOARGS, "forget every entry"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods cache_as_sequence = {.sq_length = (lenfunc)cache_len};

static PyTypeObject LineCacheType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "crossmod.trace._scan.LineCache",
    .tp_basicsize = sizeof(LineCache),
    .tp_dealloc = (destructor)cache_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "bytes -> object memo for the readers' caches (see _scan.c)",
    .tp_new = cache_new,
    .tp_methods = cache_methods,
    .tp_as_sequence = &cache_as_sequence,
};

/* ---------------------------------- trace.dat pages ---------------------------------- */

#define TS_SHIFT 27
#define TYPE_TIME_EXTEND 30
#define TYPE_TIME_STAMP 31
#define COMMIT_MASK ((1u << 27) - 1)
#define MISSING_EVENTS (1ull << 31)
#define TS_MSB ((__int128)0xF8 << 56)

static inline uint32_t ld32(const unsigned char *p, int swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

static inline uint64_t ld64(const unsigned char *p, int swap)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return swap ? __builtin_bswap64(v) : v;
}

/* The word at index `i` of the blob read as u32s, or 0 past its end (the reference reads
 * a memoryview and raises there; the callers check bounds first, see _walk_py). */
#define WORD(i) ld32(b + ((Py_ssize_t)(i) << 2), swap)

/* problem(pos, what) for a damaged page: 0, or -1 with an exception (strict mode raises) */
static int report(PyObject *problem, Py_ssize_t pos, PyObject *what)
{
    if (what == NULL)
        return -1;
    PyObject *r = PyObject_CallFunction(problem, "nN", pos, what);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/*
 * walk_block(blob, cpu, params, fcache, memo, out, miss, problem) -> lost pages
 *
 * params = (page_size, ts_off, commit_off, commit_size, data_off, big, ts_add, prev)
 * miss(data, nxt, pos, ts) handles a record whose bytes are not in fcache;
 * problem(pos, what) records a damaged page; `memo` is a LineCache in front of fcache.
 * Port of datpages.PageDecoder._walk_py.
 */
static PyObject *walk_block(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    PyObject *cpu, *fcache, *out, *miss, *problem;
    LineCache *mc;
    Py_ssize_t ps, ts_off, commit_off, commit_size, data_off;
    int big;
    long long ts_add;
    PyObject *prev;
    if (!PyArg_ParseTuple(args, "y*O(nnnnnpLO)O!O!O!OO", &buf, &cpu, &ps, &ts_off, &commit_off,
                          &commit_size, &data_off, &big, &ts_add, &prev, &PyDict_Type, &fcache,
                          &LineCacheType, &mc, &PyList_Type, &out, &miss, &problem))
        return NULL;
    if (!bound) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_RuntimeError, "_scan.bind() was not called");
        return NULL;
    }
    const unsigned char *b = buf.buf;
    const Py_ssize_t len = buf.len;
    const int swap = big != (PY_BIG_ENDIAN ? 1 : 0);
    long lost = 0;
    PyObject *res = NULL;
    PyObject *raw = NULL; /* the current record's bytes, when a dict lookup needed them */
    long cpu_n = PyLong_AsLong(cpu);
    if (cpu_n == -1 && PyErr_Occurred())
        goto done;
    if (ps <= 0 || ps % 4 || ts_off < 0 || commit_off < 0 || data_off < 0
        || ts_off + 8 > ps || commit_off + commit_size > ps || data_off > ps
        || (commit_size != 4 && commit_size != 8)) {
        PyErr_SetString(PyExc_ValueError, "page layout does not fit the page");
        goto done;
    }
    for (Py_ssize_t p = 0; p + ps <= len; p += ps) {
        __int128 ts = (__int128)ld64(b + p + ts_off, swap) + ts_add;
        uint64_t flags = commit_size == 8 ? ld64(b + p + commit_off, swap)
                                          : ld32(b + p + commit_off, swap);
        Py_ssize_t pos = p + data_off;
        Py_ssize_t end = pos + (Py_ssize_t)(flags & COMMIT_MASK);
        if (flags & MISSING_EVENTS)
            lost++;
        if (end > p + ps) {
            if (report(problem, p, PyUnicode_FromFormat(
                    "CPU %ld page commit size %lu exceeds page", cpu_n,
                    (unsigned long)(flags & COMMIT_MASK))))
                goto done;
            continue;
        }
        while (pos < end) {
            uint32_t w = WORD(pos >> 2);
            uint32_t tl, delta;
            if (big) {
                tl = w >> 27;
                delta = w & 0x7FFFFFF;
            } else {
                tl = w & 31;
                delta = w >> 5;
            }
            Py_ssize_t data, nxt;
            if (tl >= 1 && tl <= 28) {
                data = pos + 4;
                nxt = data + ((Py_ssize_t)tl << 2);
            } else {
                /* every other header has a second word: one past the page is damage */
                if (((pos >> 2) + 1) * 4 + 4 > end) {
                    if (report(problem, pos, PyUnicode_FromFormat(
                            "CPU %ld record header runs past the page", cpu_n)))
                        goto done;
                    break;
                }
                uint32_t w1 = WORD((pos >> 2) + 1);
                if (tl == 0) {
                    data = pos + 8;
                    nxt = data + (((long long)w1 - 1) & ~3LL);
                    if (nxt <= data)
                        nxt = end + 1;
                } else if (tl == TYPE_TIME_EXTEND) {
                    ts += ((__int128)w1 << TS_SHIFT) + delta;
                    pos += 8;
                    continue;
                } else if (tl == TYPE_TIME_STAMP) {
                    ts = ((((__int128)w1 << TS_SHIFT) + delta) | ((ts - ts_add) & TS_MSB))
                         + ts_add;
                    pos += 8;
                    continue;
                } else {
                    if (!delta)
                        break;
                    ts += delta;
                    pos += 4 + (Py_ssize_t)w1;
                    continue;
                }
            }
            ts += delta;
            if (nxt > end) {
                if (report(problem, pos, PyUnicode_FromFormat(
                        "CPU %ld record length runs past the page", cpu_n)))
                    goto done;
                break;
            }
            uint64_t h;
            PyObject *hit = cache_get(mc, b + data, nxt - data, &h); /* borrowed */
            if (hit == NULL) {
                raw = PyBytes_FromStringAndSize((const char *)b + data, nxt - data);
                if (raw == NULL)
                    goto done;
                hit = PyDict_GetItemWithError(fcache, raw); /* borrowed */
                if (hit == NULL && PyErr_Occurred())
                    goto done;
                if (hit != NULL && cache_put(mc, b + data, nxt - data, h, hit))
                    goto done;
            }
            if (hit != NULL && PyTuple_CheckExact(hit) && PyTuple_GET_SIZE(hit) == 4) {
                /* (name, pid, comm, fields) */
                PyObject *tso = int128_to_py(ts);
                if (tso == NULL)
                    goto done;
                PyObject *ev = new_event(tso, cpu, PyTuple_GET_ITEM(hit, 1),
                                         PyTuple_GET_ITEM(hit, 2), PyTuple_GET_ITEM(hit, 0),
                                         PyTuple_GET_ITEM(hit, 3));
                if (ev == NULL)
                    goto done;
                int rc = PyList_Append(out, ev);
                Py_DECREF(ev);
                if (rc)
                    goto done;
            } else if (hit != NULL && PyTuple_CheckExact(hit) && PyTuple_GET_SIZE(hit) == 1) {
                /* a kernel_stack record seen before: attach to the event before it */
                Py_ssize_t n = PyList_GET_SIZE(out);
                PyObject *target = n ? PyList_GET_ITEM(out, n - 1) : prev;
                if (target != Py_None && SLOT(target, off_stack) == Py_None)
                    Py_SETREF(SLOT(target, off_stack), Py_NewRef(PyTuple_GET_ITEM(hit, 0)));
            } else {
                PyObject *tso = int128_to_py(ts);
                if (tso == NULL)
                    goto done;
                PyObject *r = PyObject_CallFunction(miss, "nnnN", data, nxt, pos, tso);
                if (r == NULL)
                    goto done;
                Py_DECREF(r);
                /* what `miss` decoded the record to, if it cached it */
                if (raw == NULL)
                    raw = PyBytes_FromStringAndSize((const char *)b + data, nxt - data);
                PyObject *now = raw ? PyDict_GetItemWithError(fcache, raw) : NULL;
                if ((now == NULL && PyErr_Occurred())
                    || (now != NULL && cache_put(mc, b + data, nxt - data, h, now)))
                    goto done;
            }
            Py_CLEAR(raw);
            pos = nxt;
        }
    }
    res = PyLong_FromLong(lost);
done:
    Py_XDECREF(raw);
    PyBuffer_Release(&buf);
    return res;
}

/* ------------------------------------- text lines ------------------------------------ */

#define LOCAL_CPUS 1024 /* CPUs whose latest event scan_chunk keeps in an array */

typedef struct {
    Py_ssize_t head0, head1; /* the common header "comm-pid [(tgid)] [cpu]" */
    Py_ssize_t sec0, sec1, frac0, frac1;
    Py_ssize_t body0, body1; /* empty for a <stack trace> line */
} EventMatch;

static inline int blank(Py_UCS1 c) { return c == ' ' || c == '\t'; }

/* the end of the run of blanks (`[ \t]*+`) or digits (`\d*+`) from p, before `end` */
static inline Py_ssize_t skip_blanks(const Py_UCS1 *s, Py_ssize_t p, Py_ssize_t end)
{
    while (p < end && blank(s[p]))
        p++;
    return p;
}

static inline Py_ssize_t skip_digits(const Py_UCS1 *s, Py_ssize_t p, Py_ssize_t end)
{
    while (p < end && is_digit[s[p]])
        p++;
    return p;
}

/* `\d++\.\d++:[ \t]++(?:<stack trace ?>[^\n]*+|(?P<body>[^\s:]++:[^\n]*+))\n` at p */
static int match_tail(const Py_UCS1 *s, Py_ssize_t p, Py_ssize_t eol, EventMatch *m)
{
    Py_ssize_t q = skip_digits(s, p, eol);
    if (q == p || q >= eol || s[q] != '.')
        return 0;
    m->sec0 = p;
    m->sec1 = q;
    p = q + 1;
    q = skip_digits(s, p, eol);
    if (q == p || q >= eol || s[q] != ':')
        return 0;
    m->frac0 = p;
    m->frac1 = q;
    p = q + 1;
    q = skip_blanks(s, p, eol);
    if (q == p)
        return 0;
    if (eol - q >= 13 && memcmp(s + q, "<stack trace>", 13) == 0) {
        m->body0 = m->body1 = q;
        return 1;
    }
    if (eol - q >= 14 && memcmp(s + q, "<stack trace >", 14) == 0) {
        m->body0 = m->body1 = q;
        return 1;
    }
    p = q;
    while (q < eol && !is_space[s[q]] && s[q] != ':')
        q++;
    if (q == p || q >= eol || s[q] != ':')
        return 0;
    m->body0 = p;
    m->body1 = eol;
    return 1;
}

/* after the head: `[ \t]++(?:[\w.]{4,6}[ \t]+)?` then the tail */
static int match_after_head(const Py_UCS1 *s, Py_ssize_t p, Py_ssize_t eol, EventMatch *m)
{
    Py_ssize_t q = skip_blanks(s, p, eol);
    if (q == p)
        return 0;
    Py_ssize_t wn = 0;
    while (wn < 6 && q + wn < eol && (is_word[s[q + wn]] || s[q + wn] == '.'))
        wn++;
    for (Py_ssize_t L = wn; L >= 4; L--) {
        Py_ssize_t r = q + L;
        Py_ssize_t t = skip_blanks(s, r, eol);
        if (t > r && match_tail(s, t, eol, m))
            return 1;
    }
    return match_tail(s, q, eol, m);
}

/* `\[\d++\]` at p, then the rest; sets head1 */
static int match_cpu(const Py_UCS1 *s, Py_ssize_t p, Py_ssize_t eol, EventMatch *m)
{
    if (p >= eol || s[p] != '[')
        return 0;
    Py_ssize_t q = skip_digits(s, p + 1, eol);
    if (q == p + 1 || q >= eol || s[q] != ']')
        return 0;
    m->head1 = q + 1;
    return match_after_head(s, q + 1, eol, m);
}

/* `-\d++[ \t]++(?:\([ \t]*[\d-]+\)[ \t]+)?\[\d++\]...` with s[h] == '-' */
static int match_from_dash(const Py_UCS1 *s, Py_ssize_t h, Py_ssize_t eol, EventMatch *m)
{
    Py_ssize_t q = skip_digits(s, h + 1, eol);
    if (q == h + 1)
        return 0;
    Py_ssize_t r = skip_blanks(s, q, eol);
    if (r == q)
        return 0;
    if (r < eol && s[r] == '(') {
        Py_ssize_t t = skip_blanks(s, r + 1, eol);
        Py_ssize_t d0 = t;
        while (t < eol && (is_digit[s[t]] || s[t] == '-'))
            t++;
        if (t > d0 && t < eol && s[t] == ')') {
            t++; /* past ')' */
            Py_ssize_t u = skip_blanks(s, t, eol);
            if (u > t && match_cpu(s, u, eol, m))
                return 1;
        }
    }
    return match_cpu(s, r, eol, m);
}

/* The event alternative of text._CHUNK at j (after the leading blanks) on a line
 * ending at eol (s[eol] == '\n'). */
static int match_event(const Py_UCS1 *s, Py_ssize_t j, Py_ssize_t eol, EventMatch *m)
{
    for (Py_ssize_t h = j; h < eol; h++) {
        if (s[h] == '-' && match_from_dash(s, h, eol, m)) {
            m->head0 = j;
            return 1;
        }
    }
    return 0;
}

static PyObject *str1(const Py_UCS1 *s, Py_ssize_t a, Py_ssize_t b)
{
    return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, s + a, b - a);
}

/* ts = int(sec) * 10**9 + int((frac + "0" * 9)[:9]), as the reference computes it, for
 * at most MAX_SEC_DIGITS digits of seconds (the caller reports longer ones) */
#define MAX_SEC_DIGITS 20

static PyObject *text_ts(const Py_UCS1 *s, const EventMatch *m)
{
    Py_ssize_t fn = m->frac1 - m->frac0;
    long long frac9 = 0;
    for (Py_ssize_t i = 0; i < 9; i++)
        frac9 = frac9 * 10 + (i < fn ? s[m->frac0 + i] - '0' : 0);
    __int128 sec = 0;
    for (Py_ssize_t i = m->sec0; i < m->sec1; i++)
        sec = sec * 10 + (s[i] - '0');
    return int128_to_py(sec * 1000000000 + frac9);
}

/* dict lookup; on a miss call `fallback(*args)` (which caches what it returns) */
static PyObject *cached(PyObject *cache, PyObject *key, PyObject *fallback, PyObject *args)
{
    PyObject *hit = PyDict_GetItemWithError(cache, key);
    if (hit != NULL)
        return Py_NewRef(hit);
    if (PyErr_Occurred())
        return NULL;
    return PyObject_CallObject(fallback, args);
}

/*
 * scan_chunk(chunk, state, evs, held, latest, ctx) -> None, or NotImplemented when the
 * chunk is not 1-byte text (the caller then runs the reference).
 *
 * state = [lineno, pending, extend] (updated in place);
 * ctx = (heads, bodies, stacks, head_fn, body_fn, frames_fn, other_fn, problem_fn,
 *        head_memo, body_memo, frames_memo), LineCaches in front of heads, bodies, stacks.
 * Port of text.TextReader._scan_chunk_py.
 */
static PyObject *scan_chunk(PyObject *self, PyObject *args)
{
    PyObject *chunk, *state, *evs, *held, *latest, *ctx;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!O!", &chunk, &PyList_Type, &state, &PyList_Type, &evs,
                          &PyDict_Type, &held, &PyDict_Type, &latest, &PyTuple_Type, &ctx))
        return NULL;
    if (!bound) {
        PyErr_SetString(PyExc_RuntimeError, "_scan.bind() was not called");
        return NULL;
    }
    const Py_UCS1 *s;
    Py_ssize_t n;
    if (PyBytes_Check(chunk)) {
        /* ASCII text as read from the file, not decoded: the caller checked it is ASCII
         * without CR, where bytes and their str are the same characters */
        s = (const Py_UCS1 *)PyBytes_AS_STRING(chunk);
        n = PyBytes_GET_SIZE(chunk);
    } else if (PyUnicode_Check(chunk)) {
        if (PyUnicode_READY(chunk) < 0)
            return NULL;
        if (PyUnicode_KIND(chunk) != PyUnicode_1BYTE_KIND)
            Py_RETURN_NOTIMPLEMENTED;
        s = PyUnicode_1BYTE_DATA(chunk);
        n = PyUnicode_GET_LENGTH(chunk);
    } else {
        PyErr_SetString(PyExc_TypeError, "scan_chunk: chunk must be str or ASCII bytes");
        return NULL;
    }
    PyObject *heads, *bodies, *stacks, *head_fn, *body_fn, *frames_fn, *other_fn, *problem_fn;
    LineCache *head_memo, *body_memo, *frames_memo;
    if (PyList_GET_SIZE(state) != 3
        || !PyArg_ParseTuple(ctx, "O!O!O!OOOOOO!O!O!", &PyDict_Type, &heads, &PyDict_Type,
                             &bodies, &PyDict_Type, &stacks, &head_fn, &body_fn, &frames_fn,
                             &other_fn, &problem_fn, &LineCacheType, &head_memo,
                             &LineCacheType, &body_memo, &LineCacheType, &frames_memo)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "state must be [lineno, pending, extend]");
        return NULL;
    }
    long long lineno = PyLong_AsLongLong(PyList_GET_ITEM(state, 0));
    if (lineno == -1 && PyErr_Occurred())
        return NULL;
    PyObject *pending = Py_NewRef(PyList_GET_ITEM(state, 1));
    /* this chunk's latest event and its index in evs, per CPU number below LOCAL_CPUS */
    struct { PyObject *ev; Py_ssize_t idx; int touched; } *local = PyMem_Calloc(LOCAL_CPUS,
                                                                                sizeof(*local));
    int *touched = PyMem_Malloc(LOCAL_CPUS * sizeof(int));
    int ntouched = 0;
    if (local == NULL || touched == NULL) {
        PyMem_Free(local);
        PyMem_Free(touched);
        Py_DECREF(pending);
        return PyErr_NoMemory();
    }
    int extend = PyObject_IsTrue(PyList_GET_ITEM(state, 2));
    PyObject *res = NULL;
    Py_ssize_t i = 0;
    while (i < n) {
        const Py_UCS1 *nl = memchr(s + i, '\n', n - i);
        if (nl == NULL)
            break; /* no alternative of the regex matches without a newline */
        Py_ssize_t eol = nl - s;
        Py_ssize_t j = skip_blanks(s, i, eol);
        if (eol - j >= 2 && s[j] == '=' && s[j + 1] == '>') {
            /* a run of frame lines is one match */
            Py_ssize_t end = eol + 1;
            long long lines = 1;
            while (end < n) {
                Py_ssize_t k = skip_blanks(s, end, n);
                if (n - k < 2 || s[k] != '=' || s[k + 1] != '>')
                    break;
                const Py_UCS1 *nl2 = memchr(s + k, '\n', n - k);
                if (nl2 == NULL)
                    break;
                end = nl2 - s + 1;
                lines++;
            }
            lineno += lines;
            if (pending == Py_None) {
                PyObject *r = PyObject_CallFunction(problem_fn, "Ls", lineno,
                                                    "stack frame without a <stack trace> line");
                if (r == NULL)
                    goto done;
                Py_DECREF(r);
            } else if (extend || SLOT(pending, off_stack) == Py_None) {
                uint64_t fh;
                PyObject *frames = cache_get(frames_memo, s + j, end - j, &fh);
                if (frames != NULL) {
                    Py_INCREF(frames);
                } else {
                    PyObject *raw = str1(s, j, end);
                    if (raw == NULL)
                        goto done;
                    PyObject *a = PyTuple_Pack(1, raw);
                    frames = a ? cached(stacks, raw, frames_fn, a) : NULL;
                    Py_XDECREF(a);
                    Py_DECREF(raw);
                    if (frames == NULL || cache_put(frames_memo, s + j, end - j, fh, frames)) {
                        Py_XDECREF(frames);
                        goto done;
                    }
                }
                PyObject *old = SLOT(pending, off_stack);
                if (extend && old != Py_None) {
                    PyObject *joined = PySequence_Concat(old, frames);
                    Py_DECREF(frames);
                    if (joined == NULL)
                        goto done;
                    frames = joined;
                }
                Py_SETREF(SLOT(pending, off_stack), frames);
            }
            extend = pending != Py_None && end == n;
            if (!extend)
                Py_SETREF(pending, Py_NewRef(Py_None));
            i = end;
            continue;
        }
        extend = 0;
        lineno++;
        Py_SETREF(pending, Py_NewRef(Py_None));
        EventMatch m;
        if (!match_event(s, j, eol, &m)) {
            PyObject *line = str1(s, i, eol + 1);
            if (line == NULL)
                goto done;
            PyObject *r = PyObject_CallFunction(other_fn, "LN", lineno, line);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
            i = eol + 1;
            continue;
        }
        i = eol + 1;
        uint64_t hh, bh;
        PyObject *head = cache_get(head_memo, s + m.head0, m.head1 - m.head0, &hh);
        if (head != NULL) {
            Py_INCREF(head);
        } else {
            PyObject *headtext = str1(s, m.head0, m.head1);
            if (headtext == NULL)
                goto done;
            PyObject *a = Py_BuildValue("(OL)", headtext, lineno);
            head = a ? cached(heads, headtext, head_fn, a) : NULL;
            Py_XDECREF(a);
            Py_DECREF(headtext);
            if (head == NULL)
                goto done;
            if (head == Py_None) {
                /* a CPU or pid out of range: head_fn reported it */
                Py_DECREF(head);
                continue;
            }
            if (!PyTuple_CheckExact(head) || PyTuple_GET_SIZE(head) != 3) {
                Py_DECREF(head);
                PyErr_SetString(PyExc_TypeError, "head must be (comm, pid, cpu)");
                goto done;
            }
            if (cache_put(head_memo, s + m.head0, m.head1 - m.head0, hh, head)) {
                Py_DECREF(head);
                goto done;
            }
        }
        PyObject *hit = cache_get(body_memo, s + m.body0, m.body1 - m.body0, &bh);
        if (hit != NULL) {
            Py_INCREF(hit);
        } else {
            PyObject *body = str1(s, m.body0, m.body1);
            if (body == NULL) {
                Py_DECREF(head);
                goto done;
            }
            hit = PyDict_GetItemWithError(bodies, body);
            if (hit != NULL) {
                Py_INCREF(hit);
            } else if (!PyErr_Occurred()) {
                hit = PyObject_CallFunction(body_fn, "OL", body, lineno);
            }
            Py_DECREF(body);
            if (hit == NULL) {
                Py_DECREF(head);
                goto done;
            }
            /* a body that did not parse is reported again each time, as the dict does */
            if (hit != Py_None && cache_put(body_memo, s + m.body0, m.body1 - m.body0, bh, hit)) {
                Py_DECREF(hit);
                Py_DECREF(head);
                goto done;
            }
        }
        PyObject *cpu = PyTuple_GET_ITEM(head, 2);
        if (hit == Py_None) {
            /* fields that do not parse: body_fn reported it */
        } else if (hit == stack_marker) {
            long c = PyLong_AsLong(cpu);
            PyObject *p = c >= 0 && c < LOCAL_CPUS && local[c].ev
                              ? local[c].ev
                              : PyDict_GetItemWithError(latest, cpu);
            if (p == NULL && PyErr_Occurred()) {
                Py_DECREF(hit);
                Py_DECREF(head);
                goto done;
            }
            Py_SETREF(pending, Py_NewRef(p ? p : Py_None));
        } else if (PyTuple_CheckExact(hit) && PyTuple_GET_SIZE(hit) == 2
                   && m.sec1 - m.sec0 > MAX_SEC_DIGITS) {
            /* as the reference: "time stamp <first 24 digits>... out of range" */
            char msg[64];
            int shown = m.sec1 - m.sec0 < 24 ? (int)(m.sec1 - m.sec0) : 24;
            snprintf(msg, sizeof msg, "time stamp %.*s... out of range", shown,
                     (const char *)s + m.sec0);
            PyObject *r = PyObject_CallFunction(problem_fn, "Ls", lineno, msg);
            if (r == NULL) {
                Py_DECREF(hit);
                Py_DECREF(head);
                goto done;
            }
            Py_DECREF(r);
        } else if (PyTuple_CheckExact(hit) && PyTuple_GET_SIZE(hit) == 2) {
            PyObject *ts = text_ts(s, &m);
            PyObject *ev = ts ? new_event(ts, cpu, PyTuple_GET_ITEM(head, 1),
                                          PyTuple_GET_ITEM(head, 0), PyTuple_GET_ITEM(hit, 0),
                                          PyTuple_GET_ITEM(hit, 1)) : NULL;
            long c = ev ? PyLong_AsLong(cpu) : -1;
            int rc;
            if (ev == NULL || (c == -1 && PyErr_Occurred())) {
                rc = -1;
            } else if (c >= 0 && c < LOCAL_CPUS) {
                /* held[cpu] and latest[cpu] are written once per CPU, when the chunk ends */
                local[c].ev = ev; /* borrowed: evs holds it */
                local[c].idx = PyList_GET_SIZE(evs);
                if (!local[c].touched) {
                    local[c].touched = 1;
                    touched[ntouched++] = (int)c;
                }
                rc = PyList_Append(evs, ev);
            } else {
                PyObject *idx = PyLong_FromSsize_t(PyList_GET_SIZE(evs));
                rc = idx == NULL || PyDict_SetItem(held, cpu, idx)
                     || PyDict_SetItem(latest, cpu, ev) || PyList_Append(evs, ev);
                Py_XDECREF(idx);
            }
            Py_XDECREF(ev);
            if (rc) {
                Py_DECREF(hit);
                Py_DECREF(head);
                goto done;
            }
        } else {
            Py_DECREF(hit);
            Py_DECREF(head);
            PyErr_SetString(PyExc_TypeError, "body must be (name, fields), _STACK or None");
            goto done;
        }
        Py_DECREF(hit);
        Py_DECREF(head);
    }
    res = Py_NewRef(Py_None);
done:;
    for (int t = 0; t < ntouched; t++) {
        int c = touched[t];
        PyObject *key = PyLong_FromLong(c), *idx = PyLong_FromSsize_t(local[c].idx);
        if (key == NULL || idx == NULL || PyDict_SetItem(held, key, idx)
            || PyDict_SetItem(latest, key, local[c].ev))
            Py_CLEAR(res);
        Py_XDECREF(key);
        Py_XDECREF(idx);
    }
    PyMem_Free(local);
    PyMem_Free(touched);
    /* the state is written back even on an error, so a raised problem leaves it sane */
    PyObject *ln = PyLong_FromLongLong(lineno);
    if (ln != NULL) {
        PyList_SetItem(state, 0, ln);
        PyList_SetItem(state, 1, Py_NewRef(pending));
        PyList_SetItem(state, 2, PyBool_FromLong(extend));
    } else {
        Py_CLEAR(res);
    }
    Py_DECREF(pending);
    return res;
}


/* ------------------------------------- analysis ------------------------------------- */

/* counts[name][cpu] += 1 (growing the list; a new name goes into `kind` as `other`):
 * 0, or -1 with an exception */
static int count_one(PyObject *name, PyObject *cpuo, PyObject *counts, PyObject *kind,
                     PyObject *other, PyObject *zero)
{
    Py_ssize_t cpu = PyLong_AsSsize_t(cpuo);
    if (cpu == -1 && PyErr_Occurred())
        return -1;
    if (cpu < 0) {
        PyErr_Format(PyExc_ValueError, "%S: CPU %zd is not a CPU number", name, cpu);
        return -1;
    }
    PyObject *per = PyDict_GetItemWithError(counts, name);
    if (per == NULL) {
        if (PyErr_Occurred())
            return -1;
        per = PyList_New(0);
        if (per == NULL || PyDict_SetItem(counts, name, per)) {
            Py_XDECREF(per);
            return -1;
        }
        Py_DECREF(per); /* the dict holds it */
        if (PyDict_SetDefault(kind, name, other) == NULL)
            return -1;
    }
    if (!PyList_CheckExact(per)) {
        PyErr_Format(PyExc_TypeError, "counts[%R] is not a list", name);
        return -1;
    }
    while (PyList_GET_SIZE(per) <= cpu) {
        if (PyList_Append(per, zero))
            return -1;
    }
    PyObject *old = PyList_GET_ITEM(per, cpu);
    long v = PyLong_AsLong(old);
    if (v == -1 && PyErr_Occurred())
        return -1;
    PyObject *nv = PyLong_FromLong(v + 1);
    if (nv == NULL)
        return -1;
    PyList_SET_ITEM(per, cpu, nv);
    Py_DECREF(old);
    return 0;
}

/*
 * count_upto(batch, start, counts, kind, other) -> end
 *
 * Count batch[start:end] into `counts` (event name -> list of counts indexed by CPU, the
 * current phase's), where end is one past the first "print" event from `start` (a phase
 * marker: the events after it count in the next phase) or len(batch). A name not yet in
 * `kind` is added there as `other`. Port of analyze._count_upto_py.
 */
static PyObject *count_upto(PyObject *self, PyObject *args)
{
    PyObject *batch, *counts, *kind, *other;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "O!nO!O!O", &PyList_Type, &batch, &start, &PyDict_Type, &counts,
                          &PyDict_Type, &kind, &other))
        return NULL;
    if (!bound) {
        PyErr_SetString(PyExc_RuntimeError, "_scan.bind() was not called");
        return NULL;
    }
    static PyObject *print = NULL, *zero = NULL;
    if (print == NULL && (print = PyUnicode_InternFromString("print")) == NULL)
        return NULL;
    if (zero == NULL && (zero = PyLong_FromLong(0)) == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(batch);
    for (Py_ssize_t i = start < 0 ? 0 : start; i < n && i < PyList_GET_SIZE(batch); i++) {
        PyObject *ev = PyList_GET_ITEM(batch, i);
        PyObject *name, *cpuo;
        if (Py_TYPE(ev) == event_type && SLOT(ev, off_name) && SLOT(ev, off_cpu)) {
            name = Py_NewRef(SLOT(ev, off_name));
            cpuo = Py_NewRef(SLOT(ev, off_cpu));
        } else {
            /* anything else with .name and .cpu, as the reference takes it */
            name = PyObject_GetAttrString(ev, "name");
            cpuo = name ? PyObject_GetAttrString(ev, "cpu") : NULL;
            if (cpuo == NULL) {
                Py_XDECREF(name);
                return NULL;
            }
        }
        int rc = count_one(name, cpuo, counts, kind, other, zero);
        int is_print = rc == 0 && PyUnicode_Check(name)
                       && (name == print || PyUnicode_Compare(name, print) == 0);
        Py_DECREF(name);
        Py_DECREF(cpuo);
        if (rc)
            return NULL;
        if (is_print)
            return PyLong_FromSsize_t(i + 1);
    }
    return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS, "bind(Event, word, space, digit, stack_marker)"},
    {"walk_block", walk_block, METH_VARARGS, "ring-buffer pages -> Events (datpages)"},
    {"scan_chunk", scan_chunk, METH_VARARGS, "text lines -> Events (text)"},
    {"count_upto", count_upto, METH_VARARGS, "events per name and CPU (analyze)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "crossmod.trace._scan",
    "Compiled hot loops of crossmod.trace (pure-Python references in datpages/text).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__scan(void)
{
    if (PyType_Ready(&LineCacheType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "LineCache", (PyObject *)&LineCacheType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
