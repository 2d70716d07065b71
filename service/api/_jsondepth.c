/* service.api._jsondepth: the request-body nesting check, over the raw bytes in one pass.
 *
 * service/api/json_depth.py walks the parsed document to refuse bodies nested deeper than
 * settings.max_json_depth; on a large prefetch that walk cost about as much as parsing the JSON.
 * This computes the same answer from the bytes the parser has already accepted, in C99.
 *
 * Depth, as the walk counts it: the top-level value is at depth 1 and every array element or
 * object member value is one level below its container; scalars count too. So a value sits at
 * depth open + 1, where open is the number of containers open around its first byte. Two
 * observations keep the scan to one counter:
 *   - an object key is always followed by its value at the same depth, so counting the key's
 *     opening quote as "a value at open + 1" changes nothing for valid JSON, and the scan does
 *     not need to know whether it is in an object or an array;
 *   - "a container got a child" needs no flag of its own: the child's first byte is seen while
 *     the container is open, and that byte is what gets checked.
 * Hence: the answer is True iff some byte that begins or continues a value (outside strings:
 * anything but whitespace , : ] }) is seen with open >= limit.
 *
 * The caller has parsed the body first, so the input is valid JSON; for anything else any answer
 * is acceptable, but every read stays inside the buffer and nothing can crash or loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

/* Below this size the scan takes tens of microseconds, less than the wait to take the GIL back
 * from a busy thread could add, so small bodies keep the GIL (as hashlib does for small inputs). */
#define GIL_RELEASE_MIN_BYTES (64 * 1024)

enum { VALUE = 0, SPACE, COMMA_COLON, OPEN, CLOSE, QUOTE };

/* Byte classes outside strings; every byte not listed (digits, letters of true/false/null, - + .,
 * and anything invalid) is part of a value. */
static unsigned char byte_class[256];

static void init_byte_class(void)
{
    memset(byte_class, VALUE, sizeof byte_class);
    byte_class[' '] = byte_class['\t'] = byte_class['\n'] = byte_class['\r'] = SPACE;
    byte_class[','] = byte_class[':'] = COMMA_COLON;
    byte_class['['] = byte_class['{'] = OPEN;
    byte_class[']'] = byte_class['}'] = CLOSE;
    byte_class['"'] = QUOTE;
}

/* Index just past the quote that closes the string whose content starts at i, or n if the
 * string is unterminated. memchr finds quote candidates quickly (a prefetch is mostly string
 * bytes); a candidate is escaped iff an odd run of backslashes precedes it. Counting that run
 * back only as far as the string's start is exact: a backslash escapes the next byte, so pairs
 * in a run escape each other, and the byte before a run is never a backslash. */
static Py_ssize_t skip_string(const unsigned char *s, Py_ssize_t i, Py_ssize_t n)
{
    const Py_ssize_t start = i;
    while (i < n) {
        const unsigned char *q = memchr(s + i, '"', (size_t)(n - i));
        if (q == NULL)
            return n;
        Py_ssize_t at = q - s;
        Py_ssize_t slashes = 0;
        while (at - slashes > start && s[at - slashes - 1] == '\\')
            slashes++;
        if (slashes % 2 == 0)
            return at + 1;
        i = at + 1;
    }
    return n;
}

static int scan_exceeds(const unsigned char *s, Py_ssize_t n, Py_ssize_t limit)
{
    Py_ssize_t open = 0; /* containers open around the current byte */
    Py_ssize_t i = 0;
    while (i < n) {
        switch (byte_class[s[i]]) {
        case SPACE:
        case COMMA_COLON:
            i++;
            break;
        case CLOSE:
            if (open > 0) /* only invalid input closes more than it opened */
                open--;
            i++;
            break;
        case OPEN:
            if (open >= limit)
                return 1;
            open++;
            i++;
            break;
        case QUOTE: /* a string value, or a key, which sits at its value's depth */
            if (open >= limit)
                return 1;
            i = skip_string(s, i + 1, n);
            break;
        default: /* a number or literal */
            if (open >= limit)
                return 1;
            i++;
            break;
        }
    }
    return 0;
}

PyDoc_STRVAR(exceeds_doc,
             "exceeds(data, limit, /)\n--\n\n"
             "True iff some value in the JSON document `data` (bytes-like, UTF-8, already parsed as\n"
             "valid JSON) sits deeper than `limit`, the top-level value being at depth 1.");

static PyObject *exceeds(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer data;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "y*n:exceeds", &data, &limit))
        return NULL;
    /* PyArg_ParseTuple's y* yields a C-contiguous buffer, and holding it keeps a bytearray from
     * being resized while the GIL is released. */
    const unsigned char *bytes = data.buf;
    int result;
    if (data.len >= GIL_RELEASE_MIN_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        result = scan_exceeds(bytes, data.len, limit);
        Py_END_ALLOW_THREADS
    } else {
        result = scan_exceeds(bytes, data.len, limit);
    }
    PyBuffer_Release(&data);
    return PyBool_FromLong(result);
}

static PyMethodDef methods[] = {
    {"exceeds", exceeds, METH_VARARGS, exceeds_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "service.api._jsondepth",
    .m_doc = "JSON nesting-depth check over raw request bytes (see service/api/json_depth.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__jsondepth(void)
{
    init_byte_class();
    return PyModule_Create(&module);
}
