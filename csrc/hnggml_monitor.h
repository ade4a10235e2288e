/* hnggml_monitor.h: the eval callback that watches FFN neurons in llama.cpp.
 *
 * The monitor is handed to llama.cpp as `cb_eval` (type
 * ggml_backend_sched_eval_callback) with a monitor pointer as user data.
 * It reads the input of ffn_down (z, shape [n_ff, n_tokens]) and the output
 * of ffn_down (h, shape [n_embd, n_tokens]) of the layers it watches, keeps
 * z for the selected neurons and the L2 norm of h for each token row, and
 * can multiply selected neurons of z by a scale before ffn_down reads them.
 *
 * The monitor never includes ggml headers and never reads struct ggml_tensor
 * fields. Every tensor access goes through public ggml functions whose
 * addresses the caller copies into hn_ggml_api from the ggml library that
 * llama.cpp has already loaded.
 *
 * Errors never abort: the callback records a status code and the caller
 * reads it with hn_monitor_status() after each decode.
 */
#ifndef HNGGML_MONITOR_H
#define HNGGML_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cdef-begin: hnggml/_monitor.py hands the text up to cdef-end to cffi. */
struct ggml_tensor;

/* Public ggml functions, with the signatures of ggml.h and ggml-backend.h. */
typedef struct hn_ggml_api {
    const char *(*get_name)(const struct ggml_tensor *t);
    const char *(*op_desc)(const struct ggml_tensor *t);
    int64_t (*nelements)(const struct ggml_tensor *t);
    int64_t (*nrows)(const struct ggml_tensor *t);
    size_t (*element_size)(const struct ggml_tensor *t);
    bool (*is_contiguous)(const struct ggml_tensor *t);
    void *(*get_data)(const struct ggml_tensor *t);
    void (*tensor_get)(const struct ggml_tensor *t, void *data, size_t offset, size_t size);
    void (*tensor_set)(struct ggml_tensor *t, const void *data, size_t offset, size_t size);
} hn_ggml_api;

enum hn_status {
    HN_OK = 0,
    HN_ERR_SHAPE = 1,      /* a watched node has an unexpected width */
    HN_ERR_TYPE = 2,       /* a watched node is not contiguous f32 */
    HN_ERR_CAPACITY = 3,   /* more rows than the capture buffer holds */
    HN_ERR_NO_INPUT = 4,   /* ffn_down output seen without its input node */
    HN_ERR_ARGUMENT = 5    /* a bad argument to a configuration function */
};

enum hn_rows_mode {
    HN_ROWS_LAST = 0,      /* keep only the last token row of each ubatch */
    HN_ROWS_ALL = 1        /* append every token row, up to the capacity */
};

typedef struct hn_monitor hn_monitor;

/* Create a monitor for a model with n_layer layers of width n_ff and
 * hidden size n_embd. z_prefix and h_prefix are the node names without
 * the "-<layer>" suffix, for example "ffn_geglu" and "ffn_out".
 * Returns NULL on a bad argument or when memory runs out. */
hn_monitor *hn_monitor_new(const hn_ggml_api *api, int32_t n_layer, int32_t n_ff,
                           int32_t n_embd, const char *z_prefix, const char *h_prefix);
void hn_monitor_free(hn_monitor *m);

/* The callback to store in llama_context_params.cb_eval, with the monitor
 * as cb_eval_user_data. */
bool hn_monitor_callback(struct ggml_tensor *t, bool ask, void *user_data);

/* Watch neurons idx[0..n) of a layer (n = 0 stops watching it). The
 * indices are copied. host_memory tells whether tensor data can be read
 * through ggml_get_data (CPU buffers) or must be copied with
 * ggml_backend_tensor_get (GPU buffers). */
int hn_monitor_watch(hn_monitor *m, int32_t layer, const int32_t *idx, int32_t n);
/* Multiply neurons idx[0..n) of a layer by scale before ffn_down reads them. */
int hn_monitor_scale(hn_monitor *m, int32_t layer, const int32_t *idx, int32_t n, float scale);
int hn_monitor_set_host_memory(hn_monitor *m, bool host_memory);
/* Allocate the capture buffers: 1 row per layer in HN_ROWS_LAST mode,
 * capacity rows per layer in HN_ROWS_ALL mode. Call after hn_monitor_watch. */
int hn_monitor_set_capture(hn_monitor *m, int32_t mode, int32_t capacity);
void hn_monitor_set_enabled(hn_monitor *m, bool enabled);

/* Clear the row counters and the status before a new capture. */
void hn_monitor_rewind(hn_monitor *m);
int hn_monitor_status(const hn_monitor *m);
/* Rows stored for a layer since the last rewind (the most recent row
 * only, in HN_ROWS_LAST mode). */
int32_t hn_monitor_rows(const hn_monitor *m, int32_t layer);
/* Number of ubatches of the layer seen since the last rewind. */
int64_t hn_monitor_calls(const hn_monitor *m, int32_t layer);
/* Capture buffers of a layer: z is rows x n_watched floats (row-major),
 * h_norm is rows floats. Valid until the next hn_monitor_set_capture. */
float *hn_monitor_z(hn_monitor *m, int32_t layer);
float *hn_monitor_h_norm(hn_monitor *m, int32_t layer);

/* Discovery: while on, the ask phase records the names of the nodes it
 * sees whose name starts with "ffn_" (up to the table size). */
void hn_monitor_set_discovery(hn_monitor *m, bool on);
int32_t hn_monitor_discovered(const hn_monitor *m);
const char *hn_monitor_discovered_name(const hn_monitor *m, int32_t i);
const char *hn_monitor_discovered_op(const hn_monitor *m, int32_t i);

/* Log-sum-exp, entropy (nats), log-probability of token and the largest
 * log-probability of one row of logits, written to out[0..3]. */
void hn_logit_stats(const float *logits, int32_t n_vocab, int32_t token, float *out);
/* cdef-end */

#ifdef __cplusplus
}
#endif

#endif
