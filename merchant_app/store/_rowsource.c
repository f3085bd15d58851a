/*
 * merchant_rows: an SQLite table-valued function over columns held in memory.
 *
 * The CSV import parses a chunk into numpy arrays. Binding them one value at
 * a time through Python's sqlite3 module creates a Python object per value
 * and holds the GIL while it binds. With this function the import registers
 * the chunk's arrays as a batch and runs one statement
 *
 *     INSERT INTO event_rows (...) SELECT c0, c1, ... FROM merchant_rows(?)
 *
 * on the store's connection. SQLite reads the values from the batch, and
 * Python's sqlite3 releases the GIL for the whole statement, so the parsing
 * threads keep running.
 *
 * The module is registered on every connection the process opens afterwards,
 * with sqlite3_auto_extension, through the SQLite library that Python's
 * sqlite3 module itself uses (see native_rows.py). It never links to SQLite:
 * every SQLite call goes through the routines table that SQLite passes in.
 *
 * Registering a batch copies its arrays into one block that this module owns
 * (about 0.5 ms per chunk of 50,000 events), so the caller may free its
 * arrays at once. A batch is named by a token, never by an address, so no
 * SQL text can make the function read memory that was not registered. Each
 * scan holds a reference to its batch. A scan still open when its token is
 * released keeps reading the same values, and the block is freed after the
 * last reference is dropped.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

/* Functions the Python side calls through ctypes; everything else is hidden
 * (setup.py builds with -fvisibility=hidden). */
#define MR_EXPORT __attribute__((visibility("default")))

/* Column kinds, as native_rows.py numbers them. */
#define MR_INT64 1
#define MR_FLOAT64 2
#define MR_TEXT 3

/* Columns c0 .. c15 exist in every batch, and a batch with fewer columns
 * gives NULL in the rest. The hidden column after them takes the token. */
#define MR_COLUMNS 16
#define MR_TOKEN_COLUMN MR_COLUMNS
#define MR_SLOTS 64
/* Upper bound of rows, texts and text bytes in a batch, so that every size
 * computed from them (times 8, rounded up, summed over 16 columns) stays far
 * below INT64_MAX. */
#define MR_MAX_COUNT (INT64_C(1) << 40)

/* One column of a batch. For MR_INT64 and MR_FLOAT64, `values` has one
 * int64_t or double per row and `nulls`, when not NULL, one byte per row
 * (non-zero = NULL). For MR_TEXT, `values` has one int64_t code per row:
 * -1 is NULL, and code k is the k-th text, the text_lengths[k] bytes of
 * `text` from text_starts[k], in UTF-8. `text_size` is the size of `text`. */
typedef struct {
    int32_t kind;
    const void *values;
    const uint8_t *nulls;
    const char *text;
    int64_t text_size;
    const int64_t *text_starts;
    const int64_t *text_lengths;
    int64_t text_count;
} mr_column;

typedef struct {
    int64_t rows;
    int32_t columns;
    const mr_column *column;
} mr_batch;

/* A registered batch: a copy of the caller's batch whose arrays all lie in
 * `block`, and the number of references (the registry's and open scans'). */
typedef struct {
    mr_batch batch;
    mr_column column[MR_COLUMNS];
    char *block;
    int64_t references;
} mr_owned;

typedef struct {
    int64_t token;
    mr_owned *owned;
} mr_slot;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mr_slot registry[MR_SLOTS];
static int64_t last_token = 0;

/* Check a caller's batch; return 1 when its sizes and texts are consistent. */
static int batch_is_valid(const mr_batch *batch)
{
    if (batch == NULL || batch->rows < 0 || batch->rows > MR_MAX_COUNT || batch->columns < 0 ||
        batch->columns > MR_COLUMNS || (batch->columns > 0 && batch->column == NULL)) {
        return 0;
    }
    for (int32_t i = 0; i < batch->columns; i++) {
        const mr_column *column = &batch->column[i];
        if (batch->rows > 0 && column->values == NULL) {
            return 0;
        }
        if (column->kind == MR_TEXT) {
            if (column->text_count < 0 || column->text_count > MR_MAX_COUNT ||
                column->text_size < 0 || column->text_size > MR_MAX_COUNT ||
                (column->text_count > 0 &&
                 (column->text_starts == NULL || column->text_lengths == NULL)) ||
                (column->text_size > 0 && column->text == NULL)) {
                return 0;
            }
        } else if (column->kind != MR_INT64 && column->kind != MR_FLOAT64) {
            return 0;
        }
    }
    return 1;
}

/* Return 1 when every text of a column lies inside its buffer, so a read
 * never leaves it. Checked on the module's own copy, which the caller can no
 * longer change. */
static int texts_are_inside(const mr_column *column)
{
    for (int64_t k = 0; k < column->text_count; k++) {
        int64_t start = column->text_starts[k];
        int64_t length = column->text_lengths[k];
        if (start < 0 || length < 0 || length > INT32_MAX ||
            start > column->text_size - length) {
            return 0;
        }
    }
    return 1;
}

/* Sizes, in bytes, of the arrays of one column. The NULL mask and the text
 * may be no multiple of 8, so place() rounds every size up. */
typedef struct {
    int64_t values, nulls, text, starts, lengths;
} mr_sizes;

static mr_sizes column_sizes(const mr_column *column, int64_t rows)
{
    mr_sizes sizes = {rows * 8, 0, 0, 0, 0};
    if (column->kind == MR_TEXT) {
        sizes.text = column->text_size;
        sizes.starts = column->text_count * 8;
        sizes.lengths = column->text_count * 8;
    } else if (column->nulls != NULL) {
        sizes.nulls = rows;
    }
    return sizes;
}

static int64_t aligned(int64_t size)
{
    return (size + 7) / 8 * 8;
}

/* Copy `size` bytes from `source` to `*cursor` and advance it; return the copy. */
static void *place(char **cursor, const void *source, int64_t size)
{
    if (size == 0) {
        return NULL;
    }
    void *target = *cursor;
    memcpy(target, source, (size_t)size);
    *cursor += aligned(size);
    return target;
}

static mr_owned *copy_batch(const mr_batch *batch)
{
    int64_t total = 0;
    for (int32_t i = 0; i < batch->columns; i++) {
        mr_sizes sizes = column_sizes(&batch->column[i], batch->rows);
        total += aligned(sizes.values) + aligned(sizes.nulls) + aligned(sizes.text) +
                 sizes.starts + sizes.lengths;
    }
    mr_owned *owned = calloc(1, sizeof(*owned));
    char *block = malloc(total > 0 ? (size_t)total : 1);
    if (owned == NULL || block == NULL) {
        free(owned);
        free(block);
        return NULL;
    }
    char *cursor = block;
    for (int32_t i = 0; i < batch->columns; i++) {
        const mr_column *source = &batch->column[i];
        mr_column *target = &owned->column[i];
        mr_sizes sizes = column_sizes(source, batch->rows);
        *target = *source;
        target->values = place(&cursor, source->values, sizes.values);
        target->nulls = place(&cursor, source->nulls, sizes.nulls);
        target->text = place(&cursor, source->text, sizes.text);
        target->text_starts = place(&cursor, source->text_starts, sizes.starts);
        target->text_lengths = place(&cursor, source->text_lengths, sizes.lengths);
    }
    owned->batch.rows = batch->rows;
    owned->batch.columns = batch->columns;
    owned->batch.column = owned->column;
    owned->block = block;
    owned->references = 1;
    return owned;
}

/* Drop one reference; free the batch after the last. Call with the lock held. */
static void unreference(mr_owned *owned)
{
    if (owned != NULL && --owned->references == 0) {
        free(owned->block);
        free(owned);
    }
}

/* Copy a batch, register the copy and return its token (> 0). Return 0 when
 * the batch is invalid, memory runs out or all slots are taken. */
MR_EXPORT int64_t merchant_rows_register(const mr_batch *batch)
{
    if (!batch_is_valid(batch)) {
        return 0;
    }
    mr_owned *owned = copy_batch(batch);
    if (owned == NULL) {
        return 0;
    }
    for (int32_t i = 0; i < owned->batch.columns; i++) {
        if (owned->column[i].kind == MR_TEXT && !texts_are_inside(&owned->column[i])) {
            pthread_mutex_lock(&registry_lock);
            unreference(owned);
            pthread_mutex_unlock(&registry_lock);
            return 0;
        }
    }
    int64_t token = 0;
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i < MR_SLOTS; i++) {
        if (registry[i].token == 0) {
            token = ++last_token;
            registry[i].token = token;
            registry[i].owned = owned;
            break;
        }
    }
    if (token == 0) {
        unreference(owned);
    }
    pthread_mutex_unlock(&registry_lock);
    return token;
}

/* Forget a token; return 1 if it was registered. Open scans keep their copy. */
MR_EXPORT int merchant_rows_release(int64_t token)
{
    int found = 0;
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i < MR_SLOTS; i++) {
        if (token != 0 && registry[i].token == token) {
            unreference(registry[i].owned);
            registry[i].token = 0;
            registry[i].owned = NULL;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return found;
}

/* Return the batch of a token with one more reference, or NULL. */
static mr_owned *acquire(int64_t token)
{
    mr_owned *owned = NULL;
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i < MR_SLOTS; i++) {
        if (token != 0 && registry[i].token == token) {
            owned = registry[i].owned;
            owned->references++;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return owned;
}

static void release_scan(mr_owned *owned)
{
    if (owned == NULL) {
        return;
    }
    pthread_mutex_lock(&registry_lock);
    unreference(owned);
    pthread_mutex_unlock(&registry_lock);
}

typedef struct {
    sqlite3_vtab base;
} mr_vtab;

typedef struct {
    sqlite3_vtab_cursor base;
    mr_owned *owned;
    int64_t token;
    int64_t row;
} mr_cursor;

static int mr_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                      sqlite3_vtab **out, char **error)
{
    (void)aux;
    (void)argc;
    (void)argv;
    (void)error;
    int rc = sqlite3_declare_vtab(
        db,
        "CREATE TABLE x(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, "
        "c13, c14, c15, token HIDDEN)");
    if (rc != SQLITE_OK) {
        return rc;
    }
    /* Only statements the app prepares may use it: not triggers or views
     * stored in a database file. SQLite before 3.31 lacks the flag, and the
     * function is then not offered at all. */
    rc = sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    if (rc != SQLITE_OK) {
        return rc;
    }
    mr_vtab *table = sqlite3_malloc(sizeof(*table));
    if (table == NULL) {
        return SQLITE_NOMEM;
    }
    memset(table, 0, sizeof(*table));
    *out = &table->base;
    return SQLITE_OK;
}

static int mr_disconnect(sqlite3_vtab *table)
{
    sqlite3_free(table);
    return SQLITE_OK;
}

static int mr_open(sqlite3_vtab *table, sqlite3_vtab_cursor **out)
{
    (void)table;
    mr_cursor *cursor = sqlite3_malloc(sizeof(*cursor));
    if (cursor == NULL) {
        return SQLITE_NOMEM;
    }
    memset(cursor, 0, sizeof(*cursor));
    *out = &cursor->base;
    return SQLITE_OK;
}

static int mr_close(sqlite3_vtab_cursor *base)
{
    release_scan(((mr_cursor *)base)->owned);
    sqlite3_free(base);
    return SQLITE_OK;
}

static int mr_filter(sqlite3_vtab_cursor *base, int plan, const char *plan_name,
                     int argc, sqlite3_value **argv)
{
    (void)plan_name;
    mr_cursor *cursor = (mr_cursor *)base;
    release_scan(cursor->owned);
    cursor->owned = NULL;
    cursor->row = 0;
    if (plan != 1 || argc != 1) {
        return SQLITE_ERROR;
    }
    int64_t token = sqlite3_value_int64(argv[0]);
    cursor->token = token;
    cursor->owned = acquire(token);
    if (cursor->owned == NULL) {
        sqlite3_free(base->pVtab->zErrMsg);
        base->pVtab->zErrMsg =
            sqlite3_mprintf("merchant_rows: no batch is registered as %lld", (long long)token);
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

static int mr_next(sqlite3_vtab_cursor *base)
{
    ((mr_cursor *)base)->row++;
    return SQLITE_OK;
}

static int mr_eof(sqlite3_vtab_cursor *base)
{
    mr_cursor *cursor = (mr_cursor *)base;
    return cursor->owned == NULL || cursor->row >= cursor->owned->batch.rows;
}

static int mr_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
    *rowid = ((mr_cursor *)base)->row;
    return SQLITE_OK;
}

static int mr_column_value(sqlite3_vtab_cursor *base, sqlite3_context *context, int index)
{
    mr_cursor *cursor = (mr_cursor *)base;
    const mr_batch *batch = &cursor->owned->batch;
    int64_t row = cursor->row;
    if (index == MR_TOKEN_COLUMN) {
        /* SQLite may test `token = ?` again on each row (omit is a hint). */
        sqlite3_result_int64(context, cursor->token);
        return SQLITE_OK;
    }
    if (index < 0 || index >= batch->columns) {
        sqlite3_result_null(context);
        return SQLITE_OK;
    }
    const mr_column *column = &batch->column[index];
    if (column->kind != MR_TEXT && column->nulls != NULL && column->nulls[row]) {
        sqlite3_result_null(context);
        return SQLITE_OK;
    }
    switch (column->kind) {
    case MR_INT64:
        sqlite3_result_int64(context, ((const int64_t *)column->values)[row]);
        return SQLITE_OK;
    case MR_FLOAT64:
        /* SQLite stores NaN as NULL. */
        sqlite3_result_double(context, ((const double *)column->values)[row]);
        return SQLITE_OK;
    case MR_TEXT: {
        int64_t code = ((const int64_t *)column->values)[row];
        if (code < 0) {
            sqlite3_result_null(context);
            return SQLITE_OK;
        }
        if (code >= column->text_count) {
            sqlite3_result_error(context, "merchant_rows: text code out of range", -1);
            return SQLITE_ERROR;
        }
        /* merchant_rows_register checked that the text lies in the buffer.
         * A batch whose texts are all empty has no buffer, and SQLite reads
         * a NULL pointer as SQL NULL, so an empty text gets "". */
        int length = (int)column->text_lengths[code];
        const char *text = length == 0 ? "" : column->text + column->text_starts[code];
        sqlite3_result_text(context, text, length, SQLITE_STATIC);
        return SQLITE_OK;
    }
    default:
        sqlite3_result_error(context, "merchant_rows: unknown column kind", -1);
        return SQLITE_ERROR;
    }
}

/* A scan needs `token = ?`; without it the plan is refused. */
static int mr_best_index(sqlite3_vtab *table, sqlite3_index_info *info)
{
    (void)table;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *constraint = &info->aConstraint[i];
        if (constraint->iColumn == MR_TOKEN_COLUMN && constraint->usable &&
            constraint->op == SQLITE_INDEX_CONSTRAINT_EQ) {
            info->aConstraintUsage[i].argvIndex = 1;
            info->aConstraintUsage[i].omit = 1;
            info->idxNum = 1;
            info->estimatedCost = 1.0;
            /* Rows come out in batch order, so ORDER BY rowid costs nothing. */
            if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == -1 &&
                !info->aOrderBy[0].desc) {
                info->orderByConsumed = 1;
            }
            return SQLITE_OK;
        }
    }
    return SQLITE_CONSTRAINT;
}

static sqlite3_module mr_module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous only: no CREATE VIRTUAL TABLE */
    .xConnect = mr_connect,
    .xBestIndex = mr_best_index,
    .xDisconnect = mr_disconnect,
    .xDestroy = NULL,
    .xOpen = mr_open,
    .xClose = mr_close,
    .xFilter = mr_filter,
    .xNext = mr_next,
    .xEof = mr_eof,
    .xColumn = mr_column_value,
    .xRowid = mr_rowid,
};

/* Entry point for sqlite3_auto_extension. Without the routines table (a
 * library built without extension support) it registers nothing and lets
 * the connection open; the import then uses its Python path. */
MR_EXPORT int merchant_rows_init(sqlite3 *db, char **error, const sqlite3_api_routines *api)
{
    (void)error;
    if (api == NULL) {
        return SQLITE_OK;
    }
    pthread_mutex_lock(&registry_lock);
    if (sqlite3_api == NULL) {
        SQLITE_EXTENSION_INIT2(api);
    }
    pthread_mutex_unlock(&registry_lock);
    /* An error here would make every sqlite3_open of the process fail, so a
     * connection without the function opens anyway. native_rows.usable()
     * then finds it missing, and the import binds from Python. */
    sqlite3_create_module(db, "merchant_rows", &mr_module, NULL);
    return SQLITE_OK;
}

/* The Python module only lets the import system, and bundlers that follow
 * imports, find this library. native_rows.py calls it through ctypes. */
static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "merchant_app.store._rowsource",
    .m_doc = "SQLite table-valued function merchant_rows; used through ctypes.",
    .m_size = 0,
};

PyMODINIT_FUNC PyInit__rowsource(void)
{
    return PyModule_Create(&module_definition);
}
