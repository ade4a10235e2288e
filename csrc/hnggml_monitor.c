/* hnggml_monitor.c: see hnggml_monitor.h for the contract.
 *
 * The scheduler calls hn_monitor_callback twice per node it computes: once
 * with ask = true ("do you want to see this node?") and, for the nodes the
 * callback wants, once more with ask = false after the node is computed and
 * the backend is synchronised. Every wanted node ends a sub-graph and costs
 * a synchronisation, so the monitor asks for one node per watched layer:
 * the ffn_down output h. The input z of that matmul is noted during the ask
 * phase, and its memory is still intact when h is handed over, because no
 * node after ffn_down has run yet. Only when a layer is scaled does the
 * monitor also ask for z, since the scale must land before ffn_down reads z.
 *
 * Nothing here allocates, locks or calls Python once the buffers exist.
 */
#include "hnggml_monitor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HN_PREFIX_MAX 48
#define HN_DISCOVERY_MAX 2048
#define HN_NAME_MAX 64
#define HN_OP_MAX 24

typedef struct hn_layer {
    int32_t n_watch;
    int32_t *watch;               /* neuron indices to keep */
    int32_t n_scale;
    int32_t *scale_idx;           /* neuron indices to multiply */
    float scale;
    float *z;                     /* rows x n_watch */
    float *h_norm;                /* rows */
    int32_t rows;
    int64_t calls;
    struct ggml_tensor *z_node;   /* input of ffn_down in the current compute */
} hn_layer;

struct hn_monitor {
    hn_ggml_api api;
    int32_t n_layer;
    int32_t n_ff;
    int32_t n_embd;
    char z_prefix[HN_PREFIX_MAX];
    size_t z_len;
    char h_prefix[HN_PREFIX_MAX];
    size_t h_len;
    bool enabled;
    bool host_memory;
    bool discovery;
    int32_t mode;
    int32_t capacity;
    int status;
    hn_layer *layers;
    float *scratch;               /* n_ff + n_embd floats for non-host reads */
    int32_t n_discovered;
    char (*discovered_name)[HN_NAME_MAX];
    char (*discovered_op)[HN_OP_MAX];
};

static void set_status(hn_monitor *m, int status) {
    if (m->status == HN_OK) {
        m->status = status;
    }
}

/* Return the layer number when name is exactly "<prefix>-<digits>", else -1.
 * Views and copies carry suffixes such as " (view)" and are rejected. */
static int32_t parse_layer(const char *name, const char *prefix, size_t len) {
    if (len == 0 || strncmp(name, prefix, len) != 0 || name[len] != '-') {
        return -1;
    }
    const char *p = name + len + 1;
    int32_t layer = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 6) {
            return -1;
        }
        layer = layer * 10 + (*p - '0');
        p++;
    }
    return (digits > 0 && *p == '\0') ? layer : -1;
}

/* Views, reshapes and permutes repeat the name of their source. */
static bool is_compute_node(const hn_monitor *m, const struct ggml_tensor *t) {
    const char *op = m->api.op_desc(t);
    return op != NULL && strcmp(op, "VIEW") != 0 && strcmp(op, "RESHAPE") != 0 &&
           strcmp(op, "PERMUTE") != 0 && strcmp(op, "TRANSPOSE") != 0 &&
           strcmp(op, "NONE") != 0 && strcmp(op, "CPY") != 0;
}

static bool layer_active(const hn_layer *layer) {
    return layer->n_watch > 0 || (layer->n_scale > 0 && layer->scale != 1.0f);
}

static bool layer_scaled(const hn_layer *layer) {
    return layer->n_scale > 0 && layer->scale != 1.0f;
}

/* Width (ne0) of a 2-D f32 tensor, or -1 when it is not contiguous f32. */
static int64_t row_width(const hn_monitor *m, const struct ggml_tensor *t, int64_t *rows) {
    if (m->api.element_size(t) != sizeof(float) || !m->api.is_contiguous(t)) {
        return -1;
    }
    *rows = m->api.nrows(t);
    return *rows > 0 ? m->api.nelements(t) / *rows : 0;
}

static void record_discovery(hn_monitor *m, const struct ggml_tensor *t, const char *name) {
    if (m->n_discovered >= HN_DISCOVERY_MAX) {
        return;
    }
    const char *op = m->api.op_desc(t);
    strncpy(m->discovered_name[m->n_discovered], name, HN_NAME_MAX - 1);
    m->discovered_name[m->n_discovered][HN_NAME_MAX - 1] = '\0';
    strncpy(m->discovered_op[m->n_discovered], op ? op : "", HN_OP_MAX - 1);
    m->discovered_op[m->n_discovered][HN_OP_MAX - 1] = '\0';
    m->n_discovered++;
}

static bool ask(hn_monitor *m, struct ggml_tensor *t) {
    const char *name = m->api.get_name(t);
    if (name == NULL) {
        return false;
    }
    if (m->discovery) {
        record_discovery(m, t, name);
    }
    /* Every FFN node name starts with "ffn_"; this rejects most nodes at once. */
    if (name[0] != 'f' || name[1] != 'f' || name[2] != 'n' || name[3] != '_') {
        return false;
    }
    int32_t il = parse_layer(name, m->z_prefix, m->z_len);
    if (il >= 0) {
        if (il >= m->n_layer || !layer_active(&m->layers[il]) || !is_compute_node(m, t)) {
            return false;
        }
        m->layers[il].z_node = t;
        return layer_scaled(&m->layers[il]);
    }
    il = parse_layer(name, m->h_prefix, m->h_len);
    if (il >= 0 && il < m->n_layer && m->layers[il].n_watch > 0 && is_compute_node(m, t)) {
        return true;
    }
    return false;
}

static void scale_z(hn_monitor *m, hn_layer *layer, struct ggml_tensor *t) {
    int64_t rows = 0;
    int64_t width = row_width(m, t, &rows);
    if (width < 0) {
        set_status(m, HN_ERR_TYPE);
        return;
    }
    if (rows > 0 && width != m->n_ff) {
        set_status(m, HN_ERR_SHAPE);
        return;
    }
    float *data = m->host_memory ? (float *)m->api.get_data(t) : NULL;
    for (int64_t r = 0; r < rows; r++) {
        for (int32_t k = 0; k < layer->n_scale; k++) {
            size_t offset = (size_t)(r * width + layer->scale_idx[k]) * sizeof(float);
            if (data != NULL) {
                data[r * width + layer->scale_idx[k]] *= layer->scale;
            } else {
                float v = 0.0f;
                m->api.tensor_get(t, &v, offset, sizeof(float));
                v *= layer->scale;
                m->api.tensor_set(t, &v, offset, sizeof(float));
            }
        }
    }
}

static const float *read_row(hn_monitor *m, const struct ggml_tensor *t, int64_t r,
                             int64_t width, float *scratch) {
    if (m->host_memory) {
        return (const float *)m->api.get_data(t) + r * width;
    }
    m->api.tensor_get(t, scratch, (size_t)(r * width) * sizeof(float),
                      (size_t)width * sizeof(float));
    return scratch;
}

static void store_row(hn_monitor *m, hn_layer *layer, int32_t slot, const float *z,
                      const float *h) {
    float *out = layer->z + (size_t)slot * (size_t)layer->n_watch;
    for (int32_t k = 0; k < layer->n_watch; k++) {
        out[k] = z[layer->watch[k]];
    }
    double sum = 0.0;
    for (int32_t i = 0; i < m->n_embd; i++) {
        sum += (double)h[i] * (double)h[i];
    }
    layer->h_norm[slot] = (float)sqrt(sum);
}

static void capture(hn_monitor *m, hn_layer *layer, struct ggml_tensor *h_node) {
    struct ggml_tensor *z_node = layer->z_node;
    layer->z_node = NULL;
    layer->calls++;
    if (z_node == NULL) {
        set_status(m, HN_ERR_NO_INPUT);
        return;
    }
    int64_t z_rows = 0;
    int64_t h_rows = 0;
    int64_t z_width = row_width(m, z_node, &z_rows);
    int64_t h_width = row_width(m, h_node, &h_rows);
    if (z_width < 0 || h_width < 0) {
        set_status(m, HN_ERR_TYPE);
        return;
    }
    if (z_rows != h_rows || (h_rows > 0 && (z_width != m->n_ff || h_width != m->n_embd))) {
        set_status(m, HN_ERR_SHAPE);
        return;
    }
    if (layer->z == NULL) {
        set_status(m, HN_ERR_CAPACITY);
        return;
    }
    int64_t first = m->mode == HN_ROWS_LAST ? h_rows - 1 : 0;
    if (first < 0) {
        first = 0;
    }
    for (int64_t r = first; r < h_rows; r++) {
        int32_t slot = 0;
        if (m->mode == HN_ROWS_ALL) {
            if (layer->rows >= m->capacity) {
                set_status(m, HN_ERR_CAPACITY);
                return;
            }
            slot = layer->rows;
        }
        const float *z = read_row(m, z_node, r, z_width, m->scratch);
        const float *h = read_row(m, h_node, r, h_width, m->scratch + m->n_ff);
        store_row(m, layer, slot, z, h);
        layer->rows = m->mode == HN_ROWS_ALL ? layer->rows + 1 : 1;
    }
}

static void observe(hn_monitor *m, struct ggml_tensor *t) {
    const char *name = m->api.get_name(t);
    if (name == NULL) {
        return;
    }
    int32_t il = parse_layer(name, m->z_prefix, m->z_len);
    if (il >= 0 && il < m->n_layer) {
        scale_z(m, &m->layers[il], t);
        return;
    }
    il = parse_layer(name, m->h_prefix, m->h_len);
    if (il >= 0 && il < m->n_layer) {
        capture(m, &m->layers[il], t);
    }
}

bool hn_monitor_callback(struct ggml_tensor *t, bool ask_phase, void *user_data) {
    hn_monitor *m = (hn_monitor *)user_data;
    if (m == NULL || t == NULL || !m->enabled) {
        /* Returning false in the data phase would silently skip the rest of
         * the split, so the data phase always returns true. */
        return !ask_phase;
    }
    if (ask_phase) {
        return ask(m, t);
    }
    observe(m, t);
    return true;
}

static bool copy_prefix(char *dst, size_t *len, const char *src) {
    if (src == NULL) {
        return false;
    }
    size_t n = strlen(src);
    if (n == 0 || n >= HN_PREFIX_MAX) {
        return false;
    }
    memcpy(dst, src, n + 1);
    *len = n;
    return true;
}

hn_monitor *hn_monitor_new(const hn_ggml_api *api, int32_t n_layer, int32_t n_ff,
                           int32_t n_embd, const char *z_prefix, const char *h_prefix) {
    if (api == NULL || n_layer <= 0 || n_layer > 4096 || n_ff <= 0 || n_embd <= 0) {
        return NULL;
    }
    if (!api->get_name || !api->op_desc || !api->nelements || !api->nrows ||
        !api->element_size || !api->is_contiguous || !api->get_data ||
        !api->tensor_get || !api->tensor_set) {
        return NULL;
    }
    hn_monitor *m = (hn_monitor *)calloc(1, sizeof(hn_monitor));
    if (m == NULL) {
        return NULL;
    }
    m->api = *api;
    m->n_layer = n_layer;
    m->n_ff = n_ff;
    m->n_embd = n_embd;
    m->host_memory = true;
    m->mode = HN_ROWS_LAST;
    m->layers = (hn_layer *)calloc((size_t)n_layer, sizeof(hn_layer));
    m->scratch = (float *)calloc((size_t)n_ff + (size_t)n_embd, sizeof(float));
    m->discovered_name = calloc(HN_DISCOVERY_MAX, HN_NAME_MAX);
    m->discovered_op = calloc(HN_DISCOVERY_MAX, HN_OP_MAX);
    if (m->layers == NULL || m->scratch == NULL || m->discovered_name == NULL ||
        m->discovered_op == NULL || !copy_prefix(m->z_prefix, &m->z_len, z_prefix) ||
        !copy_prefix(m->h_prefix, &m->h_len, h_prefix)) {
        hn_monitor_free(m);
        return NULL;
    }
    for (int32_t i = 0; i < n_layer; i++) {
        m->layers[i].scale = 1.0f;
    }
    return m;
}

static void free_capture(hn_layer *layer) {
    free(layer->z);
    free(layer->h_norm);
    layer->z = NULL;
    layer->h_norm = NULL;
    layer->rows = 0;
}

void hn_monitor_free(hn_monitor *m) {
    if (m == NULL) {
        return;
    }
    if (m->layers != NULL) {
        for (int32_t i = 0; i < m->n_layer; i++) {
            free(m->layers[i].watch);
            free(m->layers[i].scale_idx);
            free_capture(&m->layers[i]);
        }
    }
    free(m->layers);
    free(m->scratch);
    free(m->discovered_name);
    free(m->discovered_op);
    free(m);
}

/* Copy n neuron indices after checking that each lies in [0, n_ff). */
static int copy_indices(const hn_monitor *m, const int32_t *idx, int32_t n, int32_t **out) {
    *out = NULL;
    if (n == 0) {
        return HN_OK;
    }
    if (idx == NULL || n < 0 || n > m->n_ff) {
        return HN_ERR_ARGUMENT;
    }
    for (int32_t k = 0; k < n; k++) {
        if (idx[k] < 0 || idx[k] >= m->n_ff) {
            return HN_ERR_ARGUMENT;
        }
    }
    *out = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    if (*out == NULL) {
        return HN_ERR_ARGUMENT;
    }
    memcpy(*out, idx, (size_t)n * sizeof(int32_t));
    return HN_OK;
}

int hn_monitor_watch(hn_monitor *m, int32_t layer, const int32_t *idx, int32_t n) {
    if (m == NULL || layer < 0 || layer >= m->n_layer) {
        return HN_ERR_ARGUMENT;
    }
    int32_t *copy = NULL;
    int rc = copy_indices(m, idx, n, &copy);
    if (rc != HN_OK) {
        return rc;
    }
    hn_layer *l = &m->layers[layer];
    free(l->watch);
    free_capture(l);
    l->watch = copy;
    l->n_watch = n;
    return HN_OK;
}

int hn_monitor_scale(hn_monitor *m, int32_t layer, const int32_t *idx, int32_t n, float scale) {
    if (m == NULL || layer < 0 || layer >= m->n_layer || !isfinite(scale)) {
        return HN_ERR_ARGUMENT;
    }
    int32_t *copy = NULL;
    int rc = copy_indices(m, idx, n, &copy);
    if (rc != HN_OK) {
        return rc;
    }
    hn_layer *l = &m->layers[layer];
    free(l->scale_idx);
    l->scale_idx = copy;
    l->n_scale = n;
    l->scale = scale;
    return HN_OK;
}

int hn_monitor_set_host_memory(hn_monitor *m, bool host_memory) {
    if (m == NULL) {
        return HN_ERR_ARGUMENT;
    }
    m->host_memory = host_memory;
    return HN_OK;
}

int hn_monitor_set_capture(hn_monitor *m, int32_t mode, int32_t capacity) {
    if (m == NULL || (mode != HN_ROWS_LAST && mode != HN_ROWS_ALL)) {
        return HN_ERR_ARGUMENT;
    }
    if (mode == HN_ROWS_LAST) {
        capacity = 1;
    }
    if (capacity <= 0 || capacity > (1 << 24)) {
        return HN_ERR_ARGUMENT;
    }
    m->mode = mode;
    m->capacity = capacity;
    for (int32_t i = 0; i < m->n_layer; i++) {
        hn_layer *l = &m->layers[i];
        free_capture(l);
        if (l->n_watch == 0) {
            continue;
        }
        l->z = (float *)calloc((size_t)capacity * (size_t)l->n_watch, sizeof(float));
        l->h_norm = (float *)calloc((size_t)capacity, sizeof(float));
        if (l->z == NULL || l->h_norm == NULL) {
            for (int32_t j = 0; j <= i; j++) {
                free_capture(&m->layers[j]);
            }
            return HN_ERR_CAPACITY;
        }
    }
    return HN_OK;
}

void hn_monitor_set_enabled(hn_monitor *m, bool enabled) {
    if (m != NULL) {
        m->enabled = enabled;
    }
}

void hn_monitor_rewind(hn_monitor *m) {
    if (m == NULL) {
        return;
    }
    for (int32_t i = 0; i < m->n_layer; i++) {
        m->layers[i].rows = 0;
        m->layers[i].calls = 0;
        m->layers[i].z_node = NULL;
    }
    m->status = HN_OK;
}

int hn_monitor_status(const hn_monitor *m) {
    return m == NULL ? HN_ERR_ARGUMENT : m->status;
}

int32_t hn_monitor_rows(const hn_monitor *m, int32_t layer) {
    if (m == NULL || layer < 0 || layer >= m->n_layer) {
        return 0;
    }
    return m->layers[layer].rows;
}

int64_t hn_monitor_calls(const hn_monitor *m, int32_t layer) {
    if (m == NULL || layer < 0 || layer >= m->n_layer) {
        return 0;
    }
    return m->layers[layer].calls;
}

float *hn_monitor_z(hn_monitor *m, int32_t layer) {
    if (m == NULL || layer < 0 || layer >= m->n_layer) {
        return NULL;
    }
    return m->layers[layer].z;
}

float *hn_monitor_h_norm(hn_monitor *m, int32_t layer) {
    if (m == NULL || layer < 0 || layer >= m->n_layer) {
        return NULL;
    }
    return m->layers[layer].h_norm;
}

void hn_monitor_set_discovery(hn_monitor *m, bool on) {
    if (m != NULL) {
        m->discovery = on;
        if (on) {
            m->n_discovered = 0;
        }
    }
}

int32_t hn_monitor_discovered(const hn_monitor *m) {
    return m == NULL ? 0 : m->n_discovered;
}

const char *hn_monitor_discovered_name(const hn_monitor *m, int32_t i) {
    if (m == NULL || i < 0 || i >= m->n_discovered) {
        return NULL;
    }
    return m->discovered_name[i];
}

const char *hn_monitor_discovered_op(const hn_monitor *m, int32_t i) {
    if (m == NULL || i < 0 || i >= m->n_discovered) {
        return NULL;
    }
    return m->discovered_op[i];
}

/* exp(x) for x <= 0, written with arithmetic and bit operations only so that
 * the compiler vectorises the loop that calls it. Relative error below 2e-7
 * for x in [-87, 0]; smaller x returns exp(-87). */
static inline float fast_exp_nonpositive(float x) {
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = 0.5f * (x + 87.0f + fabsf(x + 87.0f)) - 87.0f; /* max(x, -87) without a branch */
    float t = x * 1.44269504088896341f + shifter;
    int32_t n;
    memcpy(&n, &t, sizeof n);
    n -= 0x4B400000; /* the integer that t - shifter holds */
    float fn = t - shifter;
    float r = x - fn * 0.693145751953125f - fn * 1.428606765330187e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666666f + r * (0.041666664f +
              r * (0.0083333333f + r * 0.0013888889f)))));
    int32_t bits;
    memcpy(&bits, &p, sizeof bits);
    bits += n * (1 << 23);
    memcpy(&p, &bits, sizeof p);
    return p;
}

/* On x86-64 Linux with GCC 11 or newer, also build x86-64-v4 (AVX-512) and
 * x86-64-v3 (AVX2, FMA) copies; the loader picks one for the CPU. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define HN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HN_CLONES
#endif

/* Sum exp(x - max) and exp(x - max) * (x - max) over a row, so that
 * entropy = log(sum) - weighted / sum. */
HN_CLONES static void sum_exp(const float *logits, int32_t n, float max, float *sum_out, float *weighted_out) {
    float sum = 0.0f;
    float weighted = 0.0f;
#pragma omp simd reduction(+ : sum, weighted)
    for (int32_t i = 0; i < n; i++) {
        float d = logits[i] - max;
        float e = fast_exp_nonpositive(d);
        sum += e;
        weighted += e * d;
    }
    *sum_out = sum;
    *weighted_out = weighted;
}

HN_CLONES static float row_max(const float *logits, int32_t n) {
    float max = logits[0];
#pragma omp simd reduction(max : max)
    for (int32_t i = 1; i < n; i++) {
        max = logits[i] > max ? logits[i] : max;
    }
    return max;
}

void hn_logit_stats(const float *logits, int32_t n_vocab, int32_t token, float *out) {
    if (out == NULL) {
        return;
    }
    if (logits == NULL || n_vocab <= 0) {
        out[0] = out[1] = out[2] = out[3] = NAN;
        return;
    }
    float max = row_max(logits, n_vocab);
    float sum = 0.0f;
    float weighted = 0.0f;
    sum_exp(logits, n_vocab, max, &sum, &weighted);
    double log_sum = log((double)sum);
    out[0] = (float)(max + log_sum);
    out[1] = (float)(log_sum - (double)weighted / (double)sum);
    out[2] = (token >= 0 && token < n_vocab) ? (float)(logits[token] - max - log_sum) : NAN;
    out[3] = (float)(-log_sum);
}
