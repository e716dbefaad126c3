/*
 * The native walker: two calls that replace a JavaScript stat per file.
 *
 * treeSignature(dir): one call that walks a source tree and hashes every
 * name and the lstat numbers (mtime, ctime, size, inode, mode) of every file
 * and symlink, plus the target's numbers for links homecloud follows ("!x",
 * "x.m4.y"). A no-change build compares it with the last build's and stats
 * nothing else. Returns undefined on anything unusual (unreadable directory,
 * special file, dangling followed link): the JavaScript walker then runs and
 * reports the problem properly.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  uint64_t hash;
} hasher;

static void feed(hasher *h, const void *data, size_t length) {
  const unsigned char *bytes = data;
  uint64_t value = h->hash;
  for (size_t i = 0; i < length; i++) {
    value ^= bytes[i];
    value *= 1099511628211ULL; /* FNV-1a 64 */
  }
  h->hash = value;
}

static void feed_stat(hasher *h, const struct stat *st) {
  int64_t numbers[7] = {st->st_mtim.tv_sec, st->st_mtim.tv_nsec, st->st_ctim.tv_sec, st->st_ctim.tv_nsec,
                        (int64_t)st->st_size, (int64_t)st->st_ino, (int64_t)st->st_mode};
  feed(h, numbers, sizeof numbers);
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int follows(const char *name) {
  return name[0] == '!' || strstr(name, ".m4.") != NULL;
}

/* 0 on success, -1 when the JavaScript walker should take over. */
static int walk(int descriptor, hasher *h, int depth) {
  if (depth > 256) return -1;
  DIR *dir = fdopendir(descriptor);
  if (!dir) {
    close(descriptor);
    return -1;
  }
  size_t count = 0, capacity = 64;
  char **names = malloc(capacity * sizeof *names);
  struct dirent *entry;
  int result = 0;
  while (names && (entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    if (count == capacity) {
      char **grown = realloc(names, (capacity *= 2) * sizeof *names);
      if (!grown) break;
      names = grown;
    }
    names[count++] = strdup(entry->d_name);
  }
  if (!names) {
    closedir(dir);
    return -1;
  }
  qsort(names, count, sizeof *names, compare_names);
  int fd = dirfd(dir);
  for (size_t i = 0; i < count && result == 0; i++) {
    struct stat st;
    if (!names[i] || fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
      result = -1;
      break;
    }
    feed(h, names[i], strlen(names[i]) + 1);
    if (S_ISDIR(st.st_mode)) {
      feed(h, "d", 1);
      int child = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      result = child < 0 ? -1 : walk(child, h, depth + 1);
      feed(h, "u", 1);
    } else if (S_ISREG(st.st_mode)) {
      feed_stat(h, &st);
    } else if (S_ISLNK(st.st_mode)) {
      feed_stat(h, &st);
      if (follows(names[i])) {
        struct stat target;
        if (fstatat(fd, names[i], &target, 0) != 0 || !S_ISREG(target.st_mode)) result = -1;
        else feed_stat(h, &target);
      }
    } else {
      result = -1;
    }
  }
  for (size_t i = 0; i < count; i++) free(names[i]);
  free(names);
  closedir(dir);
  return result;
}

/* What walkTree collects: relative paths, a kind letter each, and stat numbers. */
typedef struct {
  char **paths;
  char *kinds;
  size_t count, capacity;
  double *numbers;
  size_t used, room;
} listing;

static int add_entry(listing *l, const char *path, char kind) {
  if (l->count == l->capacity) {
    size_t capacity = l->capacity ? l->capacity * 2 : 256;
    char **paths = realloc(l->paths, capacity * sizeof *paths);
    if (!paths) return -1;
    l->paths = paths;
    char *kinds = realloc(l->kinds, capacity);
    if (!kinds) return -1;
    l->kinds = kinds;
    l->capacity = capacity;
  }
  l->paths[l->count] = strdup(path);
  l->kinds[l->count++] = kind;
  return l->paths[l->count - 1] ? 0 : -1;
}

/* The same numbers as Node's Stats: mtimeMs, ctimeMs, size, ino, mode. */
static int add_stat(listing *l, const struct stat *st) {
  if (l->used + 5 > l->room) {
    size_t room = l->room ? l->room * 2 : 1024;
    double *numbers = realloc(l->numbers, room * sizeof *numbers);
    if (!numbers) return -1;
    l->numbers = numbers;
    l->room = room;
  }
  double *n = l->numbers + l->used;
  n[0] = (double)st->st_mtim.tv_sec * 1000 + (double)st->st_mtim.tv_nsec / 1000000;
  n[1] = (double)st->st_ctim.tv_sec * 1000 + (double)st->st_ctim.tv_nsec / 1000000;
  n[2] = (double)st->st_size;
  n[3] = (double)st->st_ino;
  n[4] = (double)st->st_mode;
  l->used += 5;
  return 0;
}

static int collect(int descriptor, const char *prefix, listing *l, int depth) {
  if (depth > 256) {
    close(descriptor);
    return -1;
  }
  DIR *dir = fdopendir(descriptor);
  if (!dir) {
    close(descriptor);
    return -1;
  }
  size_t count = 0, capacity = 64;
  char **names = malloc(capacity * sizeof *names);
  struct dirent *entry;
  while (names && (entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    if (count == capacity) {
      char **grown = realloc(names, (capacity *= 2) * sizeof *names);
      if (!grown) break;
      names = grown;
    }
    names[count++] = strdup(entry->d_name);
  }
  if (!names) {
    closedir(dir);
    return -1;
  }
  qsort(names, count, sizeof *names, compare_names);
  int fd = dirfd(dir), result = 0;
  char path[4096];
  for (size_t i = 0; i < count && result == 0; i++) {
    struct stat st;
    if (!names[i] || fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        (size_t)snprintf(path, sizeof path, "%s/%s", prefix, names[i]) >= sizeof path) {
      result = -1;
    } else if (S_ISDIR(st.st_mode)) {
      int child = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      result = add_entry(l, path, 'd');
      if (result == 0) result = child < 0 ? -1 : collect(child, path, l, depth + 1);
      else if (child >= 0) close(child);
    } else if (S_ISREG(st.st_mode)) {
      result = add_entry(l, path, 'f') || add_stat(l, &st);
    } else if (S_ISLNK(st.st_mode)) {
      result = add_entry(l, path, 'l') || add_stat(l, &st);
      if (result == 0 && follows(names[i])) {
        struct stat target;
        result = fstatat(fd, names[i], &target, 0) != 0 || !S_ISREG(target.st_mode) ? -1 : add_stat(l, &target);
      }
    } else {
      result = -1;
    }
  }
  for (size_t i = 0; i < count; i++) free(names[i]);
  free(names);
  closedir(dir);
  return result;
}

/* walkTree(dir) -> { paths, kinds, numbers } | undefined: the whole listing, for a rebuild. */
static napi_value walk_tree(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  char path[4096];
  size_t length;
  napi_get_undefined(env, &result);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &length) != napi_ok || length >= sizeof path - 1)
    return result;
  listing l = {0};
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int status = fd < 0 ? (errno == ENOENT ? 0 : -1) : collect(fd, "", &l, 0);
  if (status == 0) {
    napi_value paths, kinds, buffer, numbers;
    void *data;
    napi_create_array_with_length(env, l.count, &paths);
    for (size_t i = 0; i < l.count; i++) {
      napi_value text;
      napi_create_string_utf8(env, l.paths[i], NAPI_AUTO_LENGTH, &text);
      napi_set_element(env, paths, (uint32_t)i, text);
    }
    napi_create_string_latin1(env, l.kinds ? l.kinds : "", l.count, &kinds);
    napi_create_arraybuffer(env, l.used * sizeof(double), &data, &buffer);
    if (l.used) memcpy(data, l.numbers, l.used * sizeof(double));
    napi_create_typedarray(env, napi_float64_array, l.used, buffer, 0, &numbers);
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "paths", paths);
    napi_set_named_property(env, result, "kinds", kinds);
    napi_set_named_property(env, result, "numbers", numbers);
  }
  for (size_t i = 0; i < l.count; i++) free(l.paths[i]);
  free(l.paths);
  free(l.kinds);
  free(l.numbers);
  return result;
}

static napi_value tree_signature(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  char path[4096];
  size_t length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &length) != napi_ok || length >= sizeof path - 1) {
    napi_get_undefined(env, &result);
    return result;
  }
  hasher h = {14695981039346656037ULL};
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int status;
  if (fd < 0) status = errno == ENOENT ? (feed(&h, "absent", 6), 0) : -1;
  else status = walk(fd, &h, 0);
  if (status != 0) {
    napi_get_undefined(env, &result);
    return result;
  }
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h.hash);
  napi_create_string_utf8(env, hex, 16, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "treeSignature", NAPI_AUTO_LENGTH, tree_signature, NULL, &fn);
  napi_set_named_property(env, exports, "treeSignature", fn);
  napi_create_function(env, "walkTree", NAPI_AUTO_LENGTH, walk_tree, NULL, &fn);
  napi_set_named_property(env, exports, "walkTree", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
