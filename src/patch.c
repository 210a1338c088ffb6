/*-------------------------------------------------------------------------
 *
 * patch.c
 *		JSON Pointer (RFC 6901), JSON Patch (RFC 6902) and JSON Merge Patch
 *		(RFC 7396) over json-c, plus a diff that produces JSON Patches.
 *
 * A JSON Patch is applied to a deep copy of the document, so a failing
 * operation leaves the caller's document exactly as it was: clients send
 * patches against state they may have read a while ago, and half of a
 * patch is never what they meant.
 *
 * json-c 0.16 has no way to insert into an array and releases whatever
 * json_object_object_del and json_object_array_del_idx remove, so the code
 * below is careful to take a reference before detaching a value it keeps.
 *
 * src/patch.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"

/*
 * A parsed JSON Pointer: the unescaped reference tokens, stored back to back
 * in one allocation.
 */
typedef struct DgPointer
{
	char	   *buf;
	char	  **tokens;
	size_t		ntokens;
} DgPointer;

typedef enum PatchOpKind
{
	PATCH_ADD,
	PATCH_REMOVE,
	PATCH_REPLACE,
	PATCH_MOVE,
	PATCH_COPY,
	PATCH_TEST
} PatchOpKind;

static const char *const patch_op_names[] = {
	"add", "remove", "replace", "move", "copy", "test"
};

#define PATCH_NOPS (sizeof(patch_op_names) / sizeof(patch_op_names[0]))

/* A growable string for the paths dg_patch_diff builds. */
typedef struct PathBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} PathBuf;

static void *
xmalloc(size_t size)
{
	void	   *p = malloc(size > 0 ? size : 1);

	if (p == NULL)
		abort();				/* as json-c does, treat this as fatal */
	return p;
}

/* ---- RFC 6901 ---- */

/*
 * Split and unescape a pointer.  Returns false for text that is not a
 * pointer: non-empty without a leading "/", or a "~" not followed by 0 or 1.
 */
static bool
pointer_parse(const char *text, DgPointer *ptr)
{
	size_t		len = strlen(text);
	size_t		n = 0;
	char	   *out;
	const char *p;

	ptr->buf = NULL;
	ptr->tokens = NULL;
	ptr->ntokens = 0;
	if (len == 0)
		return true;
	if (text[0] != '/')
		return false;
	for (p = text; *p; p++)
		if (*p == '/')
			n++;

	/* unescaping only shrinks, and each "/" becomes a terminator */
	ptr->buf = out = xmalloc(len + 1);
	ptr->tokens = xmalloc(n * sizeof(char *));
	for (p = text; *p;)
	{
		p++;					/* skip the "/" */
		ptr->tokens[ptr->ntokens++] = out;
		while (*p && *p != '/')
		{
			if (*p != '~')
				*out++ = *p++;
			else if (p[1] == '0' || p[1] == '1')
			{
				*out++ = p[1] == '0' ? '~' : '/';
				p += 2;
			}
			else
			{
				free(ptr->buf);
				free(ptr->tokens);
				ptr->buf = NULL;
				ptr->tokens = NULL;
				ptr->ntokens = 0;
				return false;
			}
		}
		*out++ = '\0';
	}
	return true;
}

static void
pointer_free(DgPointer *ptr)
{
	free(ptr->buf);
	free(ptr->tokens);
}

/*
 * Parse an array index token: decimal digits, and no leading zero, because
 * RFC 6901 gives every element exactly one spelling.
 */
static bool
parse_index(const char *token, size_t *idx)
{
	size_t		v = 0;

	if (token[0] == '\0' || (token[0] == '0' && token[1] != '\0'))
		return false;
	for (const char *p = token; *p; p++)
	{
		if (*p < '0' || *p > '9')
			return false;
		if (v > (SIZE_MAX - (size_t) (*p - '0')) / 10)
			return false;
		v = v * 10 + (size_t) (*p - '0');
	}
	*idx = v;
	return true;
}

/* Step from a container to one child; false when there is no such child. */
static bool
child_get(json_object *container, const char *token, json_object **out)
{
	size_t		idx;

	switch (json_object_get_type(container))
	{
		case json_type_object:
			return dg_json_has(container, token, out);
		case json_type_array:
			if (!parse_index(token, &idx) ||
				idx >= json_object_array_length(container))
				return false;
			*out = json_object_array_get_idx(container, idx);
			return true;
		default:
			return false;
	}
}

/* Resolve the first n tokens of ptr. */
static bool
pointer_resolve(json_object *doc, const DgPointer *ptr, size_t n,
				json_object **out)
{
	json_object *cur = doc;

	for (size_t i = 0; i < n; i++)
		if (!child_get(cur, ptr->tokens[i], &cur))
			return false;
	*out = cur;
	return true;
}

bool
dg_pointer_get(json_object *doc, const char *pointer, json_object **value)
{
	DgPointer	ptr;
	json_object *found = NULL;
	bool		exists;

	*value = NULL;
	if (!pointer_parse(pointer, &ptr))
		return false;
	exists = pointer_resolve(doc, &ptr, ptr.ntokens, &found);
	pointer_free(&ptr);
	if (exists)
		*value = found;
	return exists;
}

/* ---- RFC 6902 ---- */

/*
 * Insert into an array, shifting the tail up by one.  Each moved element
 * gains a reference before put_idx releases its old slot, so ownership
 * simply travels along.  Takes ownership of value.
 */
static void
array_insert(json_object *array, size_t idx, json_object *value)
{
	size_t		len = json_object_array_length(array);

	json_object_array_add(array, NULL);
	for (size_t i = len; i > idx; i--)
		json_object_array_put_idx(array, i,
								  json_object_get(json_object_array_get_idx(array, i - 1)));
	json_object_array_put_idx(array, idx, value);
}

/*
 * Find the container the last token of a non-empty path refers into.  Only
 * add reports a missing parent specially; for remove and replace the target
 * simply does not exist.
 */
static bool
locate_parent(json_object *root, const DgPointer *ptr, const char *path,
			  bool for_add, json_object **parent, DgError *err)
{
	enum json_type type;

	if (!pointer_resolve(root, ptr, ptr->ntokens - 1, parent))
		return for_add ?
			dg_fail(err, DG_ERR_INVALID, "parent of path \"%s\" does not exist", path) :
			dg_fail(err, DG_ERR_INVALID, "path \"%s\" does not exist", path);
	type = json_object_get_type(*parent);
	if (type == json_type_object || type == json_type_array)
		return true;
	if (!for_add)
		return dg_fail(err, DG_ERR_INVALID, "path \"%s\" does not exist", path);
	return dg_fail(err, DG_ERR_INVALID,
				   "path \"%s\": parent \"%.*s\" is %s, not an object or array",
				   path, (int) (strrchr(path, '/') - path), path,
				   dg_json_type_name(*parent));
}

/*
 * Turn the last token into a position in an array parent.  add may name the
 * slot just past the end (by number or "-"); the others need an element.
 */
static bool
array_position(json_object *array, const char *token, const char *path,
			   bool for_add, size_t *idx, DgError *err)
{
	size_t		len = json_object_array_length(array);

	if (strcmp(token, "-") == 0)
	{
		if (!for_add)
			return dg_fail(err, DG_ERR_INVALID, "path \"%s\" does not exist", path);
		*idx = len;
		return true;
	}
	if (!parse_index(token, idx))
		return dg_fail(err, DG_ERR_INVALID,
					   "path \"%s\": \"%s\" is not a valid array index",
					   path, token);
	if (for_add && *idx > len)
		return dg_fail(err, DG_ERR_INVALID,
					   "path \"%s\": index %zu is out of range for an array of %zu elements",
					   path, *idx, len);
	if (!for_add && *idx >= len)
		return dg_fail(err, DG_ERR_INVALID, "path \"%s\" does not exist", path);
	return true;
}

/* Add (or, for an object member, set) a value.  Takes ownership of value. */
static bool
patch_add(json_object **root, const DgPointer *ptr, const char *path,
		  json_object *value, DgError *err)
{
	json_object *parent;
	const char *token;
	size_t		idx;

	if (ptr->ntokens == 0)
	{
		json_object_put(*root);
		*root = value;
		return true;
	}
	token = ptr->tokens[ptr->ntokens - 1];
	if (!locate_parent(*root, ptr, path, true, &parent, err) ||
		(json_object_get_type(parent) == json_type_array &&
		 !array_position(parent, token, path, true, &idx, err)))
	{
		json_object_put(value);
		return false;
	}
	if (json_object_get_type(parent) == json_type_object)
		json_object_object_add(parent, token, value);
	else
		array_insert(parent, idx, value);
	return true;
}

/*
 * Remove the target.  When taken is given it receives the removed value
 * (with its own reference), which is what move needs.
 */
static bool
patch_remove(json_object **root, const DgPointer *ptr, const char *path,
			 json_object **taken, DgError *err)
{
	json_object *parent;
	json_object *value;
	const char *token;
	size_t		idx;

	if (ptr->ntokens == 0)
		return dg_fail(err, DG_ERR_INVALID, "cannot remove the whole document");
	token = ptr->tokens[ptr->ntokens - 1];
	if (!locate_parent(*root, ptr, path, false, &parent, err))
		return false;
	if (json_object_get_type(parent) == json_type_object)
	{
		if (!dg_json_has(parent, token, &value))
			return dg_fail(err, DG_ERR_INVALID, "path \"%s\" does not exist", path);
		if (taken)
			*taken = json_object_get(value);
		json_object_object_del(parent, token);
	}
	else
	{
		if (!array_position(parent, token, path, false, &idx, err))
			return false;
		if (taken)
			*taken = json_object_get(json_object_array_get_idx(parent, idx));
		json_object_array_del_idx(parent, idx, 1);
	}
	return true;
}

/* Replace an existing target.  Takes ownership of value. */
static bool
patch_replace(json_object **root, const DgPointer *ptr, const char *path,
			  json_object *value, DgError *err)
{
	json_object *parent;
	const char *token;
	size_t		idx;

	if (ptr->ntokens == 0)
	{
		json_object_put(*root);
		*root = value;
		return true;
	}
	token = ptr->tokens[ptr->ntokens - 1];
	if (!locate_parent(*root, ptr, path, false, &parent, err))
	{
		json_object_put(value);
		return false;
	}
	if (json_object_get_type(parent) == json_type_object)
	{
		if (!dg_json_has(parent, token, NULL))
		{
			json_object_put(value);
			return dg_fail(err, DG_ERR_INVALID, "path \"%s\" does not exist", path);
		}
		/* releases the previous value */
		json_object_object_add(parent, token, value);
	}
	else
	{
		if (!array_position(parent, token, path, false, &idx, err))
		{
			json_object_put(value);
			return false;
		}
		json_object_array_put_idx(parent, idx, value);
	}
	return true;
}

/* Fetch a string member of an operation, saying precisely what is wrong. */
static bool
op_string(json_object *op, const char *key, const char **out, DgError *err)
{
	json_object *v;

	if (!dg_json_has(op, key, &v))
		return dg_fail(err, DG_ERR_INVALID, "\"%s\" is missing", key);
	if (json_object_get_type(v) != json_type_string)
		return dg_fail(err, DG_ERR_INVALID, "\"%s\" must be a string, not %s",
					   key, dg_json_type_name(v));
	*out = json_object_get_string(v);
	return true;
}

static bool
op_pointer(const char *key, const char *text, DgPointer *ptr, DgError *err)
{
	if (!pointer_parse(text, ptr))
		return dg_fail(err, DG_ERR_INVALID,
					   "\"%s\" \"%s\" is not a valid JSON pointer", key, text);
	return true;
}

/* Carry out the move/copy half that needs both pointers. */
static bool
patch_move_copy(json_object **root, PatchOpKind kind, const DgPointer *to,
				const char *path, const DgPointer *from, const char *from_text,
				DgError *err)
{
	json_object *value;
	size_t		flen = strlen(from_text);

	if (!pointer_resolve(*root, from, from->ntokens, &value))
		return dg_fail(err, DG_ERR_INVALID,
					   "\"from\" location \"%s\" does not exist", from_text);
	if (kind == PATCH_COPY)
		return patch_add(root, to, path, dg_json_copy(value), err);

	/*
	 * A value cannot be moved into itself.  Comparing the raw text is enough
	 * because every token has exactly one escaped spelling.
	 */
	if (strcmp(from_text, path) == 0)
		return true;
	if (strncmp(from_text, path, flen) == 0 && path[flen] == '/')
		return dg_fail(err, DG_ERR_INVALID,
					   "\"from\" \"%s\" is a prefix of \"path\" \"%s\"",
					   from_text, path);
	/* from exists and is not the root, so the removal cannot fail */
	if (!patch_remove(root, from, from_text, &value, err))
		return false;
	return patch_add(root, to, path, value, err);
}

/*
 * Apply one operation to the working copy.  *opname is set as soon as the
 * operation is known, so the caller can name it in the error.
 */
static bool
patch_apply_one(json_object **root, json_object *op, const char **opname,
				DgError *err)
{
	const char *name = NULL;
	const char *path = NULL;
	const char *from_text = NULL;
	json_object *value = NULL;
	json_object *target;
	PatchOpKind kind;
	DgPointer	to;
	DgPointer	from = {0};
	bool		result = false;
	size_t		i;

	if (json_object_get_type(op) != json_type_object)
		return dg_fail(err, DG_ERR_INVALID,
					   "operation must be an object, not %s", dg_json_type_name(op));
	if (!op_string(op, "op", &name, err))
		return false;
	for (i = 0; i < PATCH_NOPS; i++)
		if (strcmp(name, patch_op_names[i]) == 0)
			break;
	if (i == PATCH_NOPS)
		return dg_fail(err, DG_ERR_INVALID,
					   "\"op\" must be one of add, remove, replace, move, copy, test");
	kind = (PatchOpKind) i;
	*opname = patch_op_names[kind];

	/* check every member before touching the document */
	if (!op_string(op, "path", &path, err))
		return false;
	if ((kind == PATCH_ADD || kind == PATCH_REPLACE || kind == PATCH_TEST) &&
		!dg_json_has(op, "value", &value))
		return dg_fail(err, DG_ERR_INVALID, "\"value\" is missing");
	if ((kind == PATCH_MOVE || kind == PATCH_COPY) &&
		!op_string(op, "from", &from_text, err))
		return false;
	if (!op_pointer("path", path, &to, err))
		return false;
	if (from_text && !op_pointer("from", from_text, &from, err))
	{
		pointer_free(&to);
		return false;
	}

	switch (kind)
	{
		case PATCH_ADD:
			result = patch_add(root, &to, path, dg_json_copy(value), err);
			break;
		case PATCH_REMOVE:
			result = patch_remove(root, &to, path, NULL, err);
			break;
		case PATCH_REPLACE:
			result = patch_replace(root, &to, path, dg_json_copy(value), err);
			break;
		case PATCH_MOVE:
		case PATCH_COPY:
			result = patch_move_copy(root, kind, &to, path, &from, from_text, err);
			break;
		case PATCH_TEST:
			if (!pointer_resolve(*root, &to, to.ntokens, &target))
				dg_fail(err, DG_ERR_INVALID, "path \"%s\" does not exist", path);
			else if (!dg_json_equal(target, value))
				dg_fail(err, DG_ERR_INVALID, "value at \"%s\" does not match", path);
			else
				result = true;
			break;
	}
	pointer_free(&to);
	pointer_free(&from);
	return result;
}

bool
dg_patch_apply(json_object **doc, json_object *patch, DgError *err)
{
	json_object *work;
	size_t		n;

	if (json_object_get_type(patch) != json_type_array)
		return dg_fail(err, DG_ERR_INVALID, "patch must be a JSON array of operations");

	work = dg_json_copy(*doc);
	n = json_object_array_length(patch);
	for (size_t i = 0; i < n; i++)
	{
		const char *opname = NULL;

		if (!patch_apply_one(&work, json_object_array_get_idx(patch, i),
							 &opname, err))
		{
			if (opname)
				dg_error_prefix(err, "patch operation %zu (%s)", i, opname);
			else
				dg_error_prefix(err, "patch operation %zu", i);
			json_object_put(work);
			return false;
		}
	}
	json_object_put(*doc);
	*doc = work;
	return true;
}

/* ---- RFC 7396 ---- */

/*
 * The MergePatch function of RFC 7396 section 2.  Consumes target and
 * returns the result, which may be target itself modified in place.
 */
static json_object *
merge_patch(json_object *target, json_object *patch)
{
	if (json_object_get_type(patch) != json_type_object)
	{
		json_object_put(target);
		return dg_json_copy(patch);
	}
	if (json_object_get_type(target) != json_type_object)
	{
		json_object_put(target);
		target = json_object_new_object();
	}
	json_object_object_foreach(patch, key, value)
	{
		json_object *current = NULL;

		if (value == NULL)
		{
			json_object_object_del(target, key);
			continue;
		}

		/*
		 * The extra reference keeps current alive through the recursion;
		 * json_object_object_add then drops the member's own reference,
		 * whether or not the merge handed back the same object.
		 */
		json_object_object_get_ex(target, key, &current);
		json_object_object_add(target, key,
							   merge_patch(json_object_get(current), value));
	}
	return target;
}

bool
dg_merge_apply(json_object **doc, json_object *merge, DgError *err)
{
	(void) err;					/* nothing can go wrong short of memory */
	*doc = merge_patch(*doc, merge);
	return true;
}

/* ---- diff ---- */

static void
path_reserve(PathBuf *buf, size_t extra)
{
	if (buf->len + extra + 1 <= buf->cap)
		return;
	while (buf->len + extra + 1 > buf->cap)
		buf->cap = buf->cap ? buf->cap * 2 : 64;
	buf->data = realloc(buf->data, buf->cap);
	if (buf->data == NULL)
		abort();
}

/* Append "/" and the escaped token. */
static void
path_push(PathBuf *buf, const char *token)
{
	/* worst case every character doubles */
	path_reserve(buf, 1 + 2 * strlen(token));
	buf->data[buf->len++] = '/';
	for (const char *p = token; *p; p++)
	{
		if (*p == '~' || *p == '/')
		{
			buf->data[buf->len++] = '~';
			buf->data[buf->len++] = *p == '~' ? '0' : '1';
		}
		else
			buf->data[buf->len++] = *p;
	}
	buf->data[buf->len] = '\0';
}

static void
path_push_index(PathBuf *buf, size_t idx)
{
	char		token[32];

	snprintf(token, sizeof(token), "%zu", idx);
	path_push(buf, token);
}

static void
path_pop(PathBuf *buf, size_t len)
{
	buf->len = len;
	buf->data[len] = '\0';
}

/* Append an operation; takes ownership of value (unused for remove). */
static void
diff_emit(json_object *ops, const char *op, const PathBuf *path,
		  json_object *value)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "op", json_object_new_string(op));
	json_object_object_add(o, "path", json_object_new_string(path->data));
	if (strcmp(op, "remove") != 0)
		json_object_object_add(o, "value", value);
	json_object_array_add(ops, o);
}

static void
diff_value(json_object *ops, PathBuf *path, json_object *from, json_object *to)
{
	enum json_type tf = json_object_get_type(from);
	enum json_type tt = json_object_get_type(to);
	size_t		mark = path->len;

	if (dg_json_equal(from, to))
		return;
	if (tf == json_type_object && tt == json_type_object)
	{
		const char **keys;
		size_t		n;
		json_object *fv;
		json_object *tv;

		keys = dg_json_sorted_keys(from, &n);
		for (size_t i = 0; i < n; i++)
		{
			path_push(path, keys[i]);
			fv = json_object_object_get(from, keys[i]);
			if (dg_json_has(to, keys[i], &tv))
				diff_value(ops, path, fv, tv);
			else
				diff_emit(ops, "remove", path, NULL);
			path_pop(path, mark);
		}
		free(keys);

		keys = dg_json_sorted_keys(to, &n);
		for (size_t i = 0; i < n; i++)
		{
			if (dg_json_has(from, keys[i], NULL))
				continue;
			path_push(path, keys[i]);
			diff_emit(ops, "add", path,
					  dg_json_copy(json_object_object_get(to, keys[i])));
			path_pop(path, mark);
		}
		free(keys);
	}
	else if (tf == json_type_array && tt == json_type_array)
	{
		size_t		nf = json_object_array_length(from);
		size_t		nt = json_object_array_length(to);
		size_t		common = nf < nt ? nf : nt;

		/*
		 * Positional, not a minimal edit script: an insertion near the front
		 * turns into replaces down the array, but it is always correct.
		 */
		for (size_t i = 0; i < common; i++)
		{
			path_push_index(path, i);
			diff_value(ops, path, json_object_array_get_idx(from, i),
					   json_object_array_get_idx(to, i));
			path_pop(path, mark);
		}
		for (size_t i = common; i < nt; i++)
		{
			path_push_index(path, i);
			diff_emit(ops, "add", path,
					  dg_json_copy(json_object_array_get_idx(to, i)));
			path_pop(path, mark);
		}
		/* from the end, so the earlier indexes stay valid */
		for (size_t i = nf; i > common; i--)
		{
			path_push_index(path, i - 1);
			diff_emit(ops, "remove", path, NULL);
			path_pop(path, mark);
		}
	}
	else
		diff_emit(ops, "replace", path, dg_json_copy(to));
}

json_object *
dg_patch_diff(json_object *from, json_object *to)
{
	json_object *ops = json_object_new_array();
	PathBuf		path = {0};

	path_reserve(&path, 0);
	path.data[0] = '\0';
	diff_value(ops, &path, from, to);
	free(path.data);
	return ops;
}
