# The optimizer kernels' C API (csrc/optim.h), cimported by _optim.pyx (the optimizers' step) and
# _netstep.pyx (the update a training pass applies itself).
cdef extern from "optim.h" nogil:
    ctypedef struct fnn_optim_hparams:
        double lr
        double momentum
        double beta2
        double eps
        double weight_decay
        double lr_wd
    ctypedef struct fnn_optim_tables:
        Py_ssize_t n_tensors
        void **p
        void **g
        void **s1
        void **s2
        Py_ssize_t *n
    int FNN_OPT_SGD, FNN_OPT_MOMENTUM, FNN_OPT_NESTEROV, FNN_OPT_ADAGRAD, FNN_OPT_RMSPROP
    int FNN_OPT_ADAM, FNN_OPT_ADAMW, FNN_OPT_COUNT
    int fnn_optim_step_f32(int kind, const fnn_optim_hparams *hp, Py_ssize_t n_tensors,
                           float **p, float **g, float **s1, float **s2,
                           const Py_ssize_t *n, const Py_ssize_t *cols, int n_threads)
    int fnn_optim_step_f64(int kind, const fnn_optim_hparams *hp, Py_ssize_t n_tensors,
                           double **p, double **g, double **s1, double **s2,
                           const Py_ssize_t *n, const Py_ssize_t *cols, int n_threads)
    int fnn_div_exact_f64(const double *a, const double *d, double *out, Py_ssize_t n)
