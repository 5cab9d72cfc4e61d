/* The Python call of a model's dfun kernels, with their checks done in C (`CompiledModel.dfun`).
 *
 * At 76 nodes a Zerlaut kernel runs in ~1.3 us; passing three NumPy arrays through cffi
 * (ffi.from_buffer each) and checking them in Python cost as much again. Here a call with
 * float64 C arrays of the right shapes is checked with NumPy's C API macros and the kernel
 * called directly. Any other argument returns None, and the Python wrapper takes its general
 * path, which converts what it can (and then calls here again) or raises the error a user
 * should see: this file never raises for a user's input. A model module is a plain shared
 * library: this is the only way Python calls its kernels.
 *
 * Model-independent, compiled once per toolchain and NumPy version. A model's kernels are
 * bound once (`bind`: the addresses of its kernels for shared and for per-node parameters,
 * the address of its packed default parameters and the object that keeps all alive) into a
 * capsule; `call` takes only that capsule, never a raw address.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <math.h>
#include <stdint.h>

typedef void (*dfun_kernel)(const int64_t n, const double *state, const double *coupling,
                            const double local_coupling, const double *params, double *deriv);

typedef struct {
    dfun_kernel kernel;            /* parameters (n_slots): shared by every node */
    dfun_kernel per_node_kernel;   /* parameters (n_slots, n_nodes) */
    const double *params;
    npy_intp n_states, n_coupling, n_slots;
    PyObject *owner; /* keeps the kernel's module and the parameter array alive */
} bound_kernel;

static const char CAPSULE_NAME[] = "mfgen.bound_dfun";

/* Above this many values the kernel runs without the GIL, as cffi's calls did. */
#define RELEASE_GIL_FROM 16384

static void release_bound(PyObject *capsule)
{
    bound_kernel *bound = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (bound != NULL) {
        Py_XDECREF(bound->owner);
        PyMem_Free(bound);
    }
}

/* bind(kernel_address, per_node_kernel_address, params_address, n_states, n_coupling,
 *      n_slots, owner) -> capsule */
static PyObject *bind(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "bind() takes 7 arguments");
        return NULL;
    }
    void *kernel = PyLong_AsVoidPtr(args[0]);
    void *per_node_kernel = PyLong_AsVoidPtr(args[1]);
    void *params = PyLong_AsVoidPtr(args[2]);
    Py_ssize_t n_states = PyLong_AsSsize_t(args[3]);
    Py_ssize_t n_coupling = PyLong_AsSsize_t(args[4]);
    Py_ssize_t n_slots = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred())
        return NULL;
    if (kernel == NULL || per_node_kernel == NULL || params == NULL || n_states < 1
        || n_coupling < 0 || n_slots < 0) {
        PyErr_SetString(PyExc_ValueError, "bind(): invalid kernel binding");
        return NULL;
    }
    bound_kernel *bound = PyMem_Malloc(sizeof *bound);
    if (bound == NULL)
        return PyErr_NoMemory();
    bound->kernel = (dfun_kernel)kernel;
    bound->per_node_kernel = (dfun_kernel)per_node_kernel;
    bound->params = params;
    bound->n_states = n_states;
    bound->n_coupling = n_coupling;
    bound->n_slots = n_slots;
    Py_INCREF(args[6]);
    bound->owner = args[6];
    PyObject *capsule = PyCapsule_New(bound, CAPSULE_NAME, release_bound);
    if (capsule == NULL) {
        Py_DECREF(bound->owner);
        PyMem_Free(bound);
    }
    return capsule;
}

/* A plain float64 array: exactly ndarray, C-contiguous, aligned, native byte order, of
 * `rows` rows and, 2-D (columns >= 0 checks their number, -1 takes any), of columns; or 1-D
 * (columns == 0). */
static int plain_array(PyObject *object, npy_intp rows, npy_intp columns)
{
    if (!PyArray_CheckExact(object))
        return 0;
    PyArrayObject *array = (PyArrayObject *)object;
    return PyArray_NDIM(array) == (columns == 0 ? 1 : 2) && PyArray_TYPE(array) == NPY_DOUBLE
           && PyArray_ISNOTSWAPPED(array)
           && PyArray_CHKFLAGS(array, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED)
           && PyArray_DIM(array, 0) == rows
           && (columns <= 0 || PyArray_DIM(array, 1) == columns);
}

static int overlap(PyArrayObject *a, PyArrayObject *b)
{
    const char *a0 = PyArray_BYTES(a), *b0 = PyArray_BYTES(b);
    return PyArray_NBYTES(a) && PyArray_NBYTES(b)
           && a0 < b0 + PyArray_NBYTES(b) && b0 < a0 + PyArray_NBYTES(a);
}

/* call(capsule, state, coupling, local_coupling, out[, params]) -> out, a new array, or None.
 * params: the packed parameters replacing the model's defaults, float64 (n_slots) for every
 * node or (n_slots, n_nodes) per node. */
static PyObject *call(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5 && nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "call() takes 5 or 6 arguments");
        return NULL;
    }
    bound_kernel *bound = PyCapsule_GetPointer(args[0], CAPSULE_NAME);
    if (bound == NULL)
        return NULL;
    PyObject *state_object = args[1], *coupling_object = args[2], *out_object = args[4];
    if (!PyFloat_Check(args[3]) || !plain_array(state_object, bound->n_states, -1))
        Py_RETURN_NONE;
    const double local_coupling = PyFloat_AS_DOUBLE(args[3]);
    PyArrayObject *state = (PyArrayObject *)state_object;
    const npy_intp n_nodes = PyArray_DIM(state, 1);
    if (n_nodes < 1 || !isfinite(local_coupling)
        || !plain_array(coupling_object, bound->n_coupling, n_nodes))
        Py_RETURN_NONE;
    const double *params = bound->params;
    dfun_kernel kernel = bound->kernel;
    if (nargs == 6) {
        if (plain_array(args[5], bound->n_slots, n_nodes))
            kernel = bound->per_node_kernel;   /* (n_slots, n_nodes): per node */
        else if (!plain_array(args[5], bound->n_slots, 0))   /* (n_slots): shared */
            Py_RETURN_NONE;
        params = PyArray_DATA((PyArrayObject *)args[5]);
    }
    PyArrayObject *coupling = (PyArrayObject *)coupling_object;
    PyArrayObject *out;
    if (out_object == Py_None) {
        npy_intp dims[2] = {bound->n_states, n_nodes};
        out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_DOUBLE);
        if (out == NULL)
            return NULL;
    } else {
        /* the kernel's arrays are `restrict`: out must not overlap what it reads */
        if (!plain_array(out_object, bound->n_states, n_nodes)
            || !PyArray_ISWRITEABLE((PyArrayObject *)out_object)
            || overlap((PyArrayObject *)out_object, state)
            || overlap((PyArrayObject *)out_object, coupling))
            Py_RETURN_NONE;
        out = (PyArrayObject *)out_object;
        Py_INCREF(out);
    }
    const double *x = PyArray_DATA(state), *c = PyArray_DATA(coupling);
    double *dx = PyArray_DATA(out);
    if (bound->n_states * n_nodes >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        kernel(n_nodes, x, c, local_coupling, params, dx);
        Py_END_ALLOW_THREADS
    } else {
        kernel(n_nodes, x, c, local_coupling, params, dx);
    }
    return (PyObject *)out;
}

static PyMethodDef methods[] = {
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL,
     "bind(kernel_address, per_node_kernel_address, params_address, n_states, n_coupling, "
     "n_slots, owner) -> capsule"},
    {"call", (PyCFunction)(void (*)(void))call, METH_FASTCALL,
     "call(capsule, state, coupling, local_coupling, out[, params]) -> array or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, MFGEN_MODULE_NAME, NULL, -1, methods};

#define CONCAT_(a, b) a##b
#define CONCAT(a, b) CONCAT_(a, b)
PyMODINIT_FUNC CONCAT(PyInit_, MFGEN_MODULE_SYMBOL)(void)
{
    import_array();
    return PyModule_Create(&module);
}
