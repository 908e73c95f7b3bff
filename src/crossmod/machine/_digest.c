/*
 * crossmod.machine._digest: the state digest of machine/digest.py, compiled, and the
 * compact stores' membership tests (check/store.py; `bits_add` and `U64Set` below).
 *
 * A port of `digest.digest_py` (whose docstring defines the digest; the tag numbers and
 * every mixing step here are the same): tests/model/test_digest.py checks that the two
 * agree on hypothesis-made nested values and on real states. A value that is not plain
 * data is turned into plain data by calling back `digest.key_of` (bound at import), so
 * what a dataclass or a function digests as is decided in one place, in Python; the
 * result is remembered per object (`memo` below).
 *
 * Built optional=True (setup.py): without a compiler the package runs the reference.
 *
 * Memory safety is checked by running its tests against a sanitizer build:
 *   gcc -shared -fPIC -O1 -g -fsanitize=address,undefined $(python3-config --includes) \
 *       src/crossmod/machine/_digest.c -o src/crossmod/machine/_digest.cpython-311-x86_64-linux-gnu.so
 *   PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 \
 *   LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
 *       python -m pytest tests/model/test_digest.py tests/model/test_store.py -k "compiled or array"
 * (then `pip install -e .` to put the normal build back).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL
enum { T_NONE = 1, T_INT, T_BIGINT, T_STR, T_BYTES, T_TUPLE, T_FROZENSET, T_MEMBER, T_OBJECT,
       NKEYS };

static PyObject *key_of = NULL;      /* digest.key_of */
static PyObject *int_bit_length = NULL, *int_to_bytes = NULL, *little = NULL,
                *signed_kw = NULL;

typedef struct { uint64_t k[NKEYS]; } Keys;

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static uint64_t words(uint64_t k, const unsigned char *p, Py_ssize_t n)
{
    uint64_t acc = mix(k ^ (uint64_t)n);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8)
        acc = mix(acc ^ load_le64(p + i));
    if (i < n) {
        uint64_t w = 0;
        for (Py_ssize_t j = 0; i + j < n; j++)
            w |= (uint64_t)p[i + j] << (8 * j);
        acc = mix(acc ^ w);
    }
    return acc;
}

static int walk(PyObject *o, const Keys *K, uint64_t *out);

/* Nesting depth, counted here rather than with Py_EnterRecursiveCall (a third of the time
 * of a state's digest): states are a few levels deep; the reference, one Python frame a
 * level, fails near Python's recursion limit, this at the same depth. */
#define DEPTH_MAX 1000
static int depth = 0;

static inline int enter(void)
{
    if (++depth > DEPTH_MAX) {
        --depth;
        PyErr_SetString(PyExc_RecursionError,
                        "maximum recursion depth exceeded while digesting a state");
        return -1;
    }
    return 0;
}

static inline void leave(void) { --depth; }

/* An int outside [-2^63, 2^63): its minimal two's complement bytes, little-endian, through
 * int's own methods (rare: no catalogue state holds one). */
static int bigint(PyObject *o, const Keys *K, uint64_t *out)
{
    PyObject *nbits = PyObject_CallOneArg(int_bit_length, o);
    if (nbits == NULL)
        return -1;
    Py_ssize_t bits = PyLong_AsSsize_t(nbits);
    Py_DECREF(nbits);
    if (bits == -1 && PyErr_Occurred())
        return -1;
    PyObject *len = PyLong_FromSsize_t(bits / 8 + 1);
    if (len == NULL)
        return -1;
    PyObject *args[] = {o, len, little, Py_True};
    PyObject *b = PyObject_Vectorcall(int_to_bytes, args, 3, signed_kw);
    Py_DECREF(len);
    if (b == NULL)
        return -1;
    *out = words(K->k[T_BIGINT], (const unsigned char *)PyBytes_AS_STRING(b),
                 PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return 0;
}

static int str(PyObject *o, const Keys *K, uint64_t *out)
{
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(o, &n);
    if (p != NULL) {
        *out = words(K->k[T_STR], (const unsigned char *)p, n);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return -1;
    PyErr_Clear(); /* lone surrogates: passed through, as the reference does */
    PyObject *b = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
    if (b == NULL)
        return -1;
    *out = words(K->k[T_STR], (const unsigned char *)PyBytes_AS_STRING(b),
                 PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return 0;
}

static int tuple(PyObject *o, const Keys *K, uint64_t *out)
{
    Py_ssize_t n = PyTuple_GET_SIZE(o);
    uint64_t acc = mix(K->k[T_TUPLE] ^ (uint64_t)n), d;
    if (enter())
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (walk(PyTuple_GET_ITEM(o, i), K, &d) < 0) {
            leave();
            return -1;
        }
        acc = mix(acc ^ d);
    }
    leave();
    *out = acc;
    return 0;
}

static int frozenset(PyObject *o, const Keys *K, uint64_t *out)
{
    uint64_t s = 0, x = 0, d;
    int rc = 0;
    if (enter())
        return -1;
#if PY_VERSION_HEX < 0x030D0000
    Py_ssize_t pos = 0;
    PyObject *e;
    Py_hash_t h;
    while (_PySet_NextEntry(o, &pos, &e, &h)) {
        if (walk(e, K, &d) < 0) {
            rc = -1;
            break;
        }
        s += d;
        x ^= mix(d ^ K->k[T_MEMBER]);
    }
#else
    PyObject *it = PyObject_GetIter(o), *e;
    if (it == NULL) {
        leave();
        return -1;
    }
    while ((e = PyIter_Next(it)) != NULL) {
        int r = walk(e, K, &d);
        Py_DECREF(e);
        if (r < 0) {
            rc = -1;
            break;
        }
        s += d;
        x ^= mix(d ^ K->k[T_MEMBER]);
    }
    Py_DECREF(it);
    if (rc == 0 && PyErr_Occurred())
        rc = -1;
#endif
    leave();
    if (rc == 0)
        *out = mix(mix(mix(K->k[T_FROZENSET] ^ (uint64_t)PySet_GET_SIZE(o)) ^ s) ^ x);
    return rc;
}

/* Digests of the values `key_of` was asked about, by identity and seed: real states hold
 * a few such objects (a TextPokeLoc, a CSD function) shared by many states, and the
 * callback costs more than the rest of a state's digest. Each entry holds a reference to
 * its object, so no other object can take its address while it is here; the table is
 * emptied when it fills. Sound because those values are immutable: a frozen dataclass,
 * a function's module and qualified name. */
#define MEMO_SLOTS 512
#define MEMO_MAX 384
typedef struct { PyObject *obj; uint64_t seed, digest; } Memo;
static Memo memo[MEMO_SLOTS];
static int memo_used = 0;

static inline size_t memo_slot(PyObject *o, uint64_t seed)
{
    return (size_t)((((uint64_t)(uintptr_t)o >> 4) ^ seed) * GOLDEN >> 55) & (MEMO_SLOTS - 1);
}

static void memo_clear(void)
{
    for (int i = 0; i < MEMO_SLOTS; i++)
        Py_CLEAR(memo[i].obj);
    memo_used = 0;
}

static int object(PyObject *o, const Keys *K, uint64_t *out)
{
    uint64_t seed = K->k[0];
    size_t i = memo_slot(o, seed);
    for (; memo[i].obj != NULL; i = (i + 1) & (MEMO_SLOTS - 1))
        if (memo[i].obj == o && memo[i].seed == seed) {
            *out = memo[i].digest;
            return 0;
        }
    if (key_of == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "crossmod.machine._digest is not bound");
        return -1;
    }
    PyObject *key = PyObject_CallOneArg(key_of, o);
    if (key == NULL)
        return -1;
    uint64_t d;
    int r = enter() ? -1 : 0;
    if (r == 0) {
        r = walk(key, K, &d);
        leave();
    }
    Py_DECREF(key);
    if (r < 0)
        return -1;
    *out = d = mix(K->k[T_OBJECT] ^ d);
    if (memo_used >= MEMO_MAX)
        memo_clear();
    /* the callback ran Python code: find a free slot again */
    for (i = memo_slot(o, seed); memo[i].obj != NULL; i = (i + 1) & (MEMO_SLOTS - 1))
        if (memo[i].obj == o && memo[i].seed == seed)
            return 0;
    Py_INCREF(o);
    memo[i].obj = o;
    memo[i].seed = seed;
    memo[i].digest = d;
    memo_used++;
    return 0;
}

static int walk(PyObject *o, const Keys *K, uint64_t *out)
{
    if (PyLong_Check(o)) { /* bool included: it digests as the int it equals */
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (overflow)
            return bigint(o, K, out);
        *out = mix(K->k[T_INT] ^ (uint64_t)v);
        return 0;
    }
    if (PyTuple_Check(o))
        return tuple(o, K, out);
    if (o == Py_None) {
        *out = mix(K->k[T_NONE]);
        return 0;
    }
    if (PyUnicode_Check(o))
        return str(o, K, out);
    if (PyFrozenSet_Check(o))
        return frozenset(o, K, out);
    if (PyBytes_Check(o)) {
        *out = words(K->k[T_BYTES], (const unsigned char *)PyBytes_AS_STRING(o),
                     PyBytes_GET_SIZE(o));
        return 0;
    }
    return object(o, K, out);
}

/* The keys of the last seed asked for: a search digests millions of states under one. */
static uint64_t last_seed = 0;
static Keys last_keys;
static int have_keys = 0;

static int keys_of(PyObject *seed, const Keys **K)
{
    if (!PyLong_Check(seed)) {
        PyErr_Format(PyExc_TypeError, "digest seed must be an int, not %.100s",
                     Py_TYPE(seed)->tp_name);
        return -1;
    }
    unsigned long long s = PyLong_AsUnsignedLongLong(seed);
    if (s == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "digest seed must be in [0, 2**64), not %R", seed);
        return -1;
    }
    if (!have_keys || s != last_seed) {
        last_keys.k[0] = (uint64_t)s; /* no type's key: the memo's seed */
        for (int t = 1; t < NKEYS; t++)
            last_keys.k[t] = mix((uint64_t)s + (uint64_t)t * GOLDEN);
        last_seed = s;
        have_keys = 1;
    }
    *K = &last_keys;
    return 0;
}

static PyObject *digest(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "digest() takes 1 or 2 arguments (%zd given)", nargs);
        return NULL;
    }
    static PyObject *zero = NULL;
    if (zero == NULL && (zero = PyLong_FromLong(0)) == NULL)
        return NULL;
    const Keys *K;
    if (keys_of(nargs == 2 ? args[1] : zero, &K) < 0)
        return NULL;
    uint64_t d;
    if (walk(args[0], K, &d) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(d);
}

/* The bitstate store's bits (check/store.py's `bit_positions`, `bits_add_py` and
 * `bits_has_py` are the reference; tests/model/test_store.py compares them): a state's
 * 64-bit digest h sets k bits of an array of m, at (h + i * h2) mod m for i < k, where
 * h2 = mix(h ^ GOLDEN) | 1 (Kirsch and Mitzenmacher's double hashing, on the whole 64-bit
 * digest, so that every bit of an array of more than 2^32 is reachable). Computed as
 * a = h mod m, b = h2 mod m and k - 1 steps of p = (p + b) mod m, without overflow for
 * any m < 2^64. */
typedef struct { unsigned char *bits; uint64_t m, h; int k; } BitArgs;

static int u64_arg(PyObject *o, const char *fn, const char *what, uint64_t *out)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): %s must be an int, not %.100s", fn, what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s(): %s must be in [0, 2**64), not %R", fn, what, o);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int bit_params(PyObject *m, PyObject *k, PyObject *h, const char *fn, BitArgs *a)
{
    uint64_t kk;
    if (u64_arg(m, fn, "m", &a->m) < 0 || u64_arg(k, fn, "k", &kk) < 0 ||
        u64_arg(h, fn, "h", &a->h) < 0)
        return -1;
    if (a->m == 0 || kk == 0 || kk > 64) {
        PyErr_Format(PyExc_ValueError, "%s(): needs m >= 1 and 1 <= k <= 64", fn);
        return -1;
    }
    a->k = (int)kk;
    return 0;
}

static int bit_args(PyObject *const *args, Py_ssize_t nargs, const char *fn, BitArgs *a)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "%s() takes 4 arguments (bits, m, k, h), %zd given",
                     fn, nargs);
        return -1;
    }
    if (!PyByteArray_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s(): bits must be a bytearray, not %.100s", fn,
                     Py_TYPE(args[0])->tp_name);
        return -1;
    }
    if (bit_params(args[1], args[2], args[3], fn, a) < 0)
        return -1;
    /* every call: the array may have been resized (m bits need ceil(m / 8) bytes) */
    if ((uint64_t)PyByteArray_GET_SIZE(args[0]) < a->m / 8 + ((a->m & 7) != 0)) {
        PyErr_Format(PyExc_ValueError, "%s(): a bytearray of %zd bytes has fewer than m bits",
                     fn, PyByteArray_GET_SIZE(args[0]));
        return -1;
    }
    a->bits = (unsigned char *)PyByteArray_AS_STRING(args[0]);
    return 0;
}

static inline uint64_t bit_step(uint64_t p, uint64_t b, uint64_t m)
{
    return p >= m - b ? p - (m - b) : p + b; /* (p + b) mod m, for p, b < m */
}

static PyObject *bit_positions(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    BitArgs a;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "bit_positions() takes 3 arguments (h, m, k), %zd given",
                     nargs);
        return NULL;
    }
    if (bit_params(args[1], args[2], args[0], "bit_positions", &a) < 0)
        return NULL;
    PyObject *out = PyList_New(a.k);
    if (out == NULL)
        return NULL;
    uint64_t p = a.h % a.m, b = (mix(a.h ^ GOLDEN) | 1) % a.m;
    for (int i = 0; i < a.k; i++, p = bit_step(p, b, a.m)) {
        PyObject *v = PyLong_FromUnsignedLongLong(p);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

static PyObject *bits_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    BitArgs a;
    if (bit_args(args, nargs, "bits_add", &a) < 0)
        return NULL;
    uint64_t p = a.h % a.m, b = (mix(a.h ^ GOLDEN) | 1) % a.m;
    int fresh = 0;
    for (int i = 0; i < a.k; i++, p = bit_step(p, b, a.m)) {
        unsigned char bit = (unsigned char)(1u << (p & 7));
        if (!(a.bits[p >> 3] & bit)) {
            a.bits[p >> 3] |= bit;
            fresh = 1;
        }
    }
    return PyBool_FromLong(fresh);
}

static PyObject *bits_has(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    BitArgs a;
    if (bit_args(args, nargs, "bits_has", &a) < 0)
        return NULL;
    uint64_t p = a.h % a.m, b = (mix(a.h ^ GOLDEN) | 1) % a.m;
    for (int i = 0; i < a.k; i++, p = bit_step(p, b, a.m))
        if (!(a.bits[p >> 3] & (1u << (p & 7))))
            Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

/* The hash-compact store's set of 64-bit digests (check/store.py's HashCompact keeps a
 * Python set where this is not built: the reference, compared in tests/model/test_store.py):
 * open addressing with linear probing in a table of 2^j words, at most 70% full, 0 marking
 * a free slot (the digest 0 is a flag of its own). 8 bytes a slot, where a set of Python
 * ints takes 16 a slot and a 40-byte int object a member. */
typedef struct {
    PyObject_HEAD
    uint64_t *slots;
    size_t mask, used;
    int has_zero;
} U64Set;

static inline size_t u64set_slot(uint64_t h, size_t mask)
{
    return (size_t)(h ^ (h >> 32)) & mask; /* the digests are mixed already */
}

static PyObject *u64set_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "U64Set() takes no arguments");
        return NULL;
    }
    U64Set *self = (U64Set *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->mask = 1023;
    self->slots = PyMem_Calloc(self->mask + 1, sizeof(uint64_t));
    if (self->slots == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void u64set_dealloc(U64Set *self)
{
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int u64set_grow(U64Set *self)
{
    size_t mask = self->mask * 2 + 1;
    uint64_t *slots = PyMem_Calloc(mask + 1, sizeof(uint64_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i <= self->mask; i++) {
        uint64_t h = self->slots[i];
        if (h == 0)
            continue;
        size_t j = u64set_slot(h, mask);
        while (slots[j] != 0)
            j = (j + 1) & mask;
        slots[j] = h;
    }
    PyMem_Free(self->slots);
    self->slots = slots;
    self->mask = mask;
    return 0;
}

/* 1 if h was added, 0 if it was there, -1 on error */
static int u64set_insert(U64Set *self, uint64_t h)
{
    if (h == 0) {
        int fresh = !self->has_zero;
        self->has_zero = 1;
        return fresh;
    }
    size_t i = u64set_slot(h, self->mask);
    for (; self->slots[i] != 0; i = (i + 1) & self->mask)
        if (self->slots[i] == h)
            return 0;
    self->slots[i] = h;
    if (++self->used * 10 >= (self->mask + 1) * 7 && u64set_grow(self) < 0)
        return -1;
    return 1;
}

static int u64set_find(U64Set *self, uint64_t h)
{
    if (h == 0)
        return self->has_zero;
    for (size_t i = u64set_slot(h, self->mask); self->slots[i] != 0;
         i = (i + 1) & self->mask)
        if (self->slots[i] == h)
            return 1;
    return 0;
}

static PyObject *u64set_add(U64Set *self, PyObject *o)
{
    uint64_t h;
    if (u64_arg(o, "U64Set.add", "h", &h) < 0)
        return NULL;
    int r = u64set_insert(self, h);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

static int u64set_contains(U64Set *self, PyObject *o)
{
    uint64_t h;
    if (!PyLong_Check(o))
        return 0;
    if (u64_arg(o, "U64Set.__contains__", "h", &h) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return -1;
        PyErr_Clear(); /* an int outside [0, 2^64) is not a digest: not a member */
        return 0;
    }
    return u64set_find(self, h);
}

static Py_ssize_t u64set_len(U64Set *self)
{
    return (Py_ssize_t)(self->used + (size_t)self->has_zero);
}

static PyObject *u64set_nbytes(U64Set *self, PyObject *unused)
{
    return PyLong_FromSize_t(sizeof(U64Set) + (self->mask + 1) * sizeof(uint64_t));
}

static PyMethodDef u64set_methods[] = {
    {"add", (PyCFunction)u64set_add, METH_O,
     "add(h) -> bool: record digest h; False when it was there already."},
    {"nbytes", (PyCFunction)u64set_nbytes, METH_NOARGS, "nbytes() -> int: the memory held."},
    {NULL, NULL, 0, NULL}};

static PySequenceMethods u64set_as_sequence = {
    .sq_length = (lenfunc)u64set_len,
    .sq_contains = (objobjproc)u64set_contains,
};

static PyTypeObject U64SetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "crossmod.machine._digest.U64Set",
    .tp_doc = "U64Set(): a set of 64-bit digests (check/store.py's hash-compact store).",
    .tp_basicsize = sizeof(U64Set),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = u64set_new,
    .tp_dealloc = (destructor)u64set_dealloc,
    .tp_methods = u64set_methods,
    .tp_as_sequence = &u64set_as_sequence,
};

static PyObject *bind(PyObject *self, PyObject *fn)
{
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "bind() takes the key_of function");
        return NULL;
    }
    Py_INCREF(fn);
    Py_XSETREF(key_of, fn);
    memo_clear(); /* another key_of may digest them differently */
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"digest", (PyCFunction)(void (*)(void))digest, METH_FASTCALL,
     "digest(obj, seed=0) -> int: machine/digest.py's digest_py, compiled."},
    {"bit_positions", (PyCFunction)(void (*)(void))bit_positions, METH_FASTCALL,
     "bit_positions(h, m, k) -> list[int]: check/store.py's bit_positions, compiled."},
    {"bits_add", (PyCFunction)(void (*)(void))bits_add, METH_FASTCALL,
     "bits_add(bits, m, k, h) -> bool: check/store.py's bits_add_py, compiled."},
    {"bits_has", (PyCFunction)(void (*)(void))bits_has, METH_FASTCALL,
     "bits_has(bits, m, k, h) -> bool: check/store.py's bits_has_py, compiled."},
    {"bind", bind, METH_O, "bind(key_of): what a value that is not plain data digests as."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "crossmod.machine._digest",
                                    "The state digest, compiled (machine/digest.py).", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__digest(void)
{
    PyObject *int_type = (PyObject *)&PyLong_Type;
    if ((int_bit_length = PyObject_GetAttrString(int_type, "bit_length")) == NULL ||
        (int_to_bytes = PyObject_GetAttrString(int_type, "to_bytes")) == NULL ||
        (little = PyUnicode_InternFromString("little")) == NULL ||
        (signed_kw = Py_BuildValue("(s)", "signed")) == NULL)
        return NULL;
    if (PyType_Ready(&U64SetType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL)
        return NULL;
    Py_INCREF(&U64SetType);
    if (PyModule_AddObject(mod, "U64Set", (PyObject *)&U64SetType) < 0) {
        Py_DECREF(&U64SetType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
