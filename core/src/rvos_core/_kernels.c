/* The compiled kernels of rvos_core.masks: single passes over a frame that NumPy makes in several.
 *
 * Written for this project (no upstream counterpart: upstream thresholds torch tensors and reads
 * masks with PIL). rvos_core.masks holds the NumPy paths used where this is not built.
 *
 * quantize: the checks, the stored probabilities q and the mask PNG's rows of a float32 frame.
 * q is the step function of the reference (rvos_core.masks.stored_probs): q(x) is the number of
 * its 255 levels t[k] (the smallest float32 input with q >= k + 1, found in Python by bisection
 * over the reference itself) that are <= x. The levels are non-decreasing, so the kernel agrees
 * with the reference exactly, on every CPU, without evaluating a sigmoid.
 * Per block of BLOCK values of a row: the smallest and largest value (as integer order keys, one
 * vectorised loop; they are also the domain check). A block on one level (q = 0, 1 or 255: most
 * of a frame) is filled with it; any other block is compared value by value (vectorised), and its
 * values in the band [t[1], t[254]) get q from the levels in their bucket (the band cut in 1024
 * equal parts, see make_buckets). The PNG byte is 255 where x >= t[127] (q >= 128), else 0.
 *
 * mask_of_pixels: a decoded mask PNG's pixels uint8 to bool, checking that each is 0 or 255.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define LEVELS 255
#define BLOCK 128
#define BUCKETS 1024

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

typedef struct {
    const float *t;       /* [LEVELS] levels, non-decreasing */
    int32_t keys[LEVELS]; /* their order keys */
    int32_t low, high;    /* the domain's ends (order keys, inclusive) */
    float origin, scale;  /* the band's buckets: (x - origin) * scale */
    /* first[j]: the number of levels in the buckets before j (levels below the band included) */
    uint16_t first[BUCKETS + 1];
} Steps;

/* The bucket of a value of the band [t[1], t[254]) (a non-decreasing function of x). */
static inline int bucket(const Steps *s, float x) {
    const int j = (int)((x - s->origin) * s->scale);
    return j < BUCKETS - 1 ? j : BUCKETS - 1;
}

/* The buckets: the band cut in BUCKETS equal parts, and how many levels lie before each part. As
 * bucket() does not decrease, a level in an earlier bucket than x's is below x, one in a later
 * bucket above it: only the few levels in x's own bucket are compared with x. */
static void make_buckets(Steps *s) {
    s->origin = s->t[1];
    s->scale = (float)BUCKETS / (s->t[254] - s->t[1]);
    uint16_t count[BUCKETS + 1] = {0};
    for (int k = 0; k < LEVELS; k++) {
        count[s->t[k] < s->origin ? 0 : bucket(s, s->t[k]) + 1]++;
    }
    uint16_t total = 0;
    for (int j = 0; j <= BUCKETS; j++) s->first[j] = total += count[j];
}

/* q of one value in the band: the number of levels <= x. */
static inline uint8_t band_level(const Steps *s, float x) {
    const int j = bucket(s, x);
    int n = s->first[j];
    while (n < s->first[j + 1] && s->t[n] <= x) n++;
    return (uint8_t)n;
}

/* An int32 that orders float32 values as numbers (-0.0 just below 0.0; NaN beyond the infinities),
 * so that the range of a block is an integer minimum and maximum, which vectorise. */
static inline int32_t order_key(float v) {
    int32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits ^ (int32_t)((uint32_t)(bits >> 31) >> 1);
}

/* The smallest and largest order_key of `count` values. */
static inline void block_range(const float *restrict x, Py_ssize_t count, int32_t *low,
                               int32_t *high) {
    int32_t a = INT32_MAX, b = INT32_MIN;
    for (Py_ssize_t i = 0; i < count; i++) {
        const int32_t k = order_key(x[i]);
        a = k < a ? k : a;
        b = k > b ? k : b;
    }
    *low = a;
    *high = b;
}

/* q and the PNG bytes of `count` values that are not all on one level. */
static inline void block_levels(const float *restrict x, Py_ssize_t count, const Steps *s,
                                uint8_t *restrict q, uint8_t *restrict png) {
    const float support = s->t[0], band = s->t[1], half = s->t[127], top = s->t[254];
    uint32_t in_band = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        const float v = x[i];
        in_band |= (uint32_t)((v >= band) & (v < top));
        q[i] = (uint8_t)((uint8_t)(v >= support) + (uint8_t)(v >= top) * 254u);
        png[i] = (uint8_t)(-(uint8_t)(v >= half));
    }
    if (!in_band) return;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (x[i] >= band && x[i] < top) q[i] = band_level(s, x[i]);
    }
}

/* The level all values with keys in [low, high] share (0, 1 or 255), or -1. */
static int one_level(const Steps *s, int32_t low, int32_t high) {
    if (high < s->keys[0]) return 0;
    if (low >= s->keys[0] && high < s->keys[1]) return 1;
    if (low >= s->keys[254]) return 255;
    return -1;
}

static inline void fill(uint8_t *restrict out, Py_ssize_t count, uint8_t value) {
    for (Py_ssize_t i = 0; i < count; i++) out[i] = value;
}

/* One block of `count` values: its q and PNG bytes; returns whether all are in the domain. */
static inline int block_pass(const float *x, Py_ssize_t count, const Steps *s, uint8_t *q,
                             uint8_t *png) {
    int32_t low, high;
    block_range(x, count, &low, &high);
    const int level = one_level(s, low, high);
    if (level < 0) {
        block_levels(x, count, s, q, png);
    } else {
        fill(q, count, (uint8_t)level);
        fill(png, count, low >= s->keys[127] ? 255 : 0);
    }
    return low >= s->low && high <= s->high;
}

/* One row of `width` values: its q and PNG bytes (after the filter byte); returns whether all its
 * values are in the domain. Whole blocks have a constant count, which the compiler unrolls. */
VECTOR_CLONES
static int row_pass(const float *x, Py_ssize_t width, const Steps *s, uint8_t *q, uint8_t *png) {
    int ok = 1;
    const Py_ssize_t whole = width - width % BLOCK;
    for (Py_ssize_t i = 0; i < whole; i += BLOCK) ok &= block_pass(x + i, BLOCK, s, q + i, png + i);
    if (whole < width) ok &= block_pass(x + whole, width - whole, s, q + whole, png + whole);
    return ok;
}

/* Returns the number of rows with values outside [low, high] or NaN (0: q and the rows are
 * complete). */
static Py_ssize_t quantize_rows(const float *x, Py_ssize_t height, Py_ssize_t width,
                                const Steps *s, uint8_t *q, uint8_t *rows) {
    Py_ssize_t bad = 0;
    for (Py_ssize_t y = 0; y < height; y++) {
        uint8_t *png = rows + y * (width + 1);
        png[0] = 0; /* PNG filter type 0 */
        bad += !row_pass(x + y * width, width, s, q + y * width, png + 1);
    }
    return bad;
}

static int need(int ok, const char *message) {
    if (!ok) PyErr_SetString(PyExc_ValueError, message);
    return ok;
}

static int check_buffers(const Py_buffer *x, const Py_buffer *t, const Py_buffer *q,
                         const Py_buffer *rows, Py_ssize_t height, Py_ssize_t width) {
    return need(height >= 0 && width >= 0, "negative frame size") &&
           need(x->len == height * width * (Py_ssize_t)sizeof(float),
                "values: need height x width float32") &&
           need(t->len == LEVELS * (Py_ssize_t)sizeof(float), "levels: need 255 float32") &&
           need(q->len == height * width, "q: need height x width bytes") &&
           need(rows->len == height * (width + 1), "rows: need height x (width + 1) bytes");
}

/* quantize(values, height, width, levels, low, high, q, rows) -> rows outside the domain */
static PyObject *quantize(PyObject *self, PyObject *args) {
    Py_buffer x, t, q, rows;
    Py_ssize_t height, width;
    float low, high;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nny*ffw*w*", &x, &height, &width, &t, &low, &high, &q, &rows))
        return NULL;
    Py_ssize_t bad = -1;
    if (check_buffers(&x, &t, &q, &rows, height, width)) {
        Steps s = {.t = (const float *)t.buf, .low = order_key(low), .high = order_key(high)};
        for (int k = 0; k < LEVELS; k++) s.keys[k] = order_key(s.t[k]);
        make_buckets(&s);
        Py_BEGIN_ALLOW_THREADS
        bad = quantize_rows((const float *)x.buf, height, width, &s, (uint8_t *)q.buf,
                            (uint8_t *)rows.buf);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&t);
    PyBuffer_Release(&q);
    PyBuffer_Release(&rows);
    return bad < 0 ? NULL : PyLong_FromSsize_t(bad);
}

/* One row of a decoded mask: out = pixel >> 7 (1 for 255); returns whether every pixel is 0 or
 * 255 ((uint8)(v + 1) <= 1 holds for those two alone). */
VECTOR_CLONES
static int mask_row(const uint8_t *restrict pixels, Py_ssize_t width, uint8_t *restrict out) {
    uint8_t other = 0;
    for (Py_ssize_t i = 0; i < width; i++) {
        other |= (uint8_t)(pixels[i] + 1) > 1;
        out[i] = pixels[i] >> 7;
    }
    return !other;
}

static int check_pixels(const Py_buffer *p, const Py_buffer *out) {
    return need(p->ndim == 2 && p->itemsize == 1 && p->strides[1] == 1,
                "pixels: need uint8 [H, W] with rows of adjacent bytes") &&
           need(p->shape[0] >= 0 && out->len == p->shape[0] * p->shape[1],
                "out: need H x W bytes");
}

/* mask_of_pixels(pixels, out) -> bool */
static PyObject *mask_of_pixels(PyObject *self, PyObject *args) {
    PyObject *source;
    Py_buffer p, out;
    (void)self;
    if (!PyArg_ParseTuple(args, "Ow*", &source, &out)) return NULL;
    if (PyObject_GetBuffer(source, &p, PyBUF_RECORDS_RO) < 0) {
        PyBuffer_Release(&out);
        return NULL;
    }
    int ok = -1;
    if (check_pixels(&p, &out)) {
        const Py_ssize_t height = p.shape[0], width = p.shape[1], stride = p.strides[0];
        ok = 1;
        Py_BEGIN_ALLOW_THREADS
        const uint8_t *rows = (const uint8_t *)p.buf;
        for (Py_ssize_t y = 0; y < height; y++) {
            ok &= mask_row(rows + y * stride, width, (uint8_t *)out.buf + y * width);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&p);
    PyBuffer_Release(&out);
    return ok < 0 ? NULL : PyBool_FromLong(ok);
}

static PyMethodDef methods[] = {
    {"quantize", quantize, METH_VARARGS,
     "quantize(values, height, width, levels, low, high, q, rows) -> int\n\n"
     "q uint8 [H, W] and the mask PNG's rows uint8 [H, W + 1] (filter byte 0, then 0 / 255) of\n"
     "C-contiguous float32 values [H, W], given the 255 levels float32 (any buffers of those\n"
     "sizes); returns the number of rows holding a value outside [low, high] or NaN (0: all\n"
     "in the domain; otherwise q and the rows are not to be used)."},
    {"mask_of_pixels", mask_of_pixels, METH_VARARGS,
     "mask_of_pixels(pixels, out) -> bool\n\n"
     "out (H x W bytes, e.g. a C-contiguous bool [H, W]) = pixels >= 128 of uint8 [H, W] pixels\n"
     "(rows of adjacent bytes, any row stride); True when every pixel is 0 or 255 (otherwise\n"
     "out is not to be used)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_kernels",
    .m_doc = "The compiled kernels of rvos_core.masks: quantize and mask_of_pixels.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
