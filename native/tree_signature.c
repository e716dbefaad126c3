/*
 * The native walker: it replaces a JavaScript stat per file, the main cost
 * of a build in which little or nothing changed.
 *
 * treeSignatures(dirs): walks every tree (a few threads: the work is system
 * calls) and returns, per tree, a hash of every path and of the lstat numbers
 * (mtime, ctime, size, inode, mode) of every file and symlink, plus the
 * target's numbers for links homecloud follows ("!x", "x.m4.y"). The listing
 * it made is kept, so that walkTree(dir) right after costs no second walk.
 *
 * startTreeSignatures(dirs): the same walks, begun in the background while
 * JavaScript loads the rest of the build; treeSignatures collects them.
 *
 * walkTree(dir): { paths, kinds, numbers } of a tree (kinds: d, f, l).
 *
 * filesSignature(paths): one hash of the same numbers of each path (links
 * followed) or of its absence, and the latest of their times: the up-to-date
 * stamp's files in one call.
 *
 * sha256(pathOrData): the hex SHA-256 of a file's content (a string is a
 * path) or of a buffer, with the OpenSSL that Node itself carries: hashing
 * one changed file then does not cost loading node:crypto.
 *
 * findRecords(path, needles), keyStarts(path, needle): records of a file of
 * JSON records keyed by path (a manifest, a render cache) found without
 * reading the file into JavaScript.
 *
 * parallelism(): how many CPUs the process may use (os.availableParallelism).
 *
 * run(program, argv, env, cwd): a Promise of { status, signal, stdout, stderr }
 * of a program run with posix_spawn on a thread of its own. Node's own spawn
 * forks the whole process on the main thread, which costs milliseconds per
 * template render; posix_spawn does not copy the process.
 *
 * The walkers give undefined for a tree with anything unusual (unreadable directory,
 * special file, dangling followed link): the JavaScript walker then runs and
 * reports the problem properly.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  char **paths;
  char *kinds;
  size_t count, capacity;
  double *numbers;
  size_t used, room;
} listing;

static void free_listing(listing *l) {
  for (size_t i = 0; i < l->count; i++) free(l->paths[i]);
  free(l->paths);
  free(l->kinds);
  free(l->numbers);
  memset(l, 0, sizeof *l);
}

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
  if (!(l->paths[l->count] = strdup(path))) return -1;
  l->kinds[l->count++] = kind;
  return 0;
}

/* The same numbers as Node's Stats: mtimeMs, ctimeMs, size, ino, mode. */
static void stat_numbers(const struct stat *st, double n[5]) {
  n[0] = (double)st->st_mtim.tv_sec * 1000 + (double)st->st_mtim.tv_nsec / 1000000;
  n[1] = (double)st->st_ctim.tv_sec * 1000 + (double)st->st_ctim.tv_nsec / 1000000;
  n[2] = (double)st->st_size;
  n[3] = (double)st->st_ino;
  n[4] = (double)st->st_mode;
}

static int add_stat(listing *l, const struct stat *st) {
  if (l->used + 5 > l->room) {
    size_t room = l->room ? l->room * 2 : 1280;
    double *numbers = realloc(l->numbers, room * sizeof *numbers);
    if (!numbers) return -1;
    l->numbers = numbers;
    l->room = room;
  }
  stat_numbers(st, l->numbers + l->used);
  l->used += 5;
  return 0;
}

/* A directory entry: its name and the type getdents64 gave (DT_UNKNOWN on file systems that do not say). */
typedef struct {
  char *name;
  unsigned char type;
} entry_name;

static int compare_names(const void *a, const void *b) {
  return strcmp(((const entry_name *)a)->name, ((const entry_name *)b)->name);
}

static int follows(const char *name) {
  return name[0] == '!' || strstr(name, ".m4.") != NULL;
}

/* Room for entries per getdents64 call: one per walk, reused down the tree (names are copied before going down). */
#define ENTRIES_ROOM 32768

/* A directory's entries but . and .., read with getdents64: readdir's work without fdopendir's fcntl calls. */
static int read_entries(int fd, char *room, entry_name **entries, size_t *count) {
  size_t capacity = 64;
  *count = 0;
  if (!(*entries = malloc(capacity * sizeof **entries))) return -1;
  for (;;) {
    ssize_t got = getdents64(fd, room, ENTRIES_ROOM);
    if (got <= 0) return got == 0 ? 0 : -1;
    for (ssize_t at = 0; at < got;) {
      struct dirent64 *entry = (struct dirent64 *)(room + at);
      at += entry->d_reclen;
      if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
      if (*count == capacity) {
        entry_name *grown = realloc(*entries, (capacity *= 2) * sizeof **entries);
        if (!grown) return -1;
        *entries = grown;
      }
      if (!((*entries)[*count].name = strdup(entry->d_name))) return -1;
      (*entries)[(*count)++].type = entry->d_type;
    }
  }
}

/*
 * Depth first, names sorted. 0 on success, -1 when the JavaScript walker should take over.
 * A directory getdents64 calls one is opened without a stat: its own numbers are not part of the signature.
 */
static int collect(int fd, const char *prefix, listing *l, int depth, char *room) {
  entry_name *entries = NULL;
  size_t count = 0;
  int result = depth > 256 ? -1 : read_entries(fd, room, &entries, &count);
  if (result == 0) qsort(entries, count, sizeof *entries, compare_names);
  char path[4096];
  for (size_t i = 0; i < count && result == 0; i++) {
    const char *name = entries[i].name;
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", prefix, name) >= sizeof path) {
      result = -1;
    } else if (entries[i].type == DT_DIR || (entries[i].type == DT_UNKNOWN && fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))) {
      int child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (child < 0 || add_entry(l, path, 'd') != 0) {
        if (child >= 0) close(child);
        result = -1;
      } else {
        result = collect(child, path, l, depth + 1, room);
      }
    } else if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      result = -1;
    } else if (S_ISREG(st.st_mode)) {
      result = add_entry(l, path, 'f') || add_stat(l, &st) ? -1 : 0;
    } else if (S_ISLNK(st.st_mode)) {
      result = add_entry(l, path, 'l') || add_stat(l, &st) ? -1 : 0;
      if (result == 0 && follows(name)) {
        struct stat target;
        result = fstatat(fd, name, &target, 0) != 0 || !S_ISREG(target.st_mode) || add_stat(l, &target) ? -1 : 0;
      }
    } else {
      result = -1;
    }
  }
  for (size_t i = 0; i < count; i++) free(entries[i].name);
  free(entries);
  close(fd);
  return result;
}

/* A missing directory is an empty tree (a machine without a directory of its own). */
static int list_tree(const char *path, listing *l) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  char *room = malloc(ENTRIES_ROOM);
  int result = room ? collect(fd, "", l, 0, room) : (close(fd), -1);
  free(room);
  if (result != 0) free_listing(l);
  return result;
}

static uint64_t feed(uint64_t hash, const void *data, size_t length) {
  const unsigned char *bytes = data;
  for (size_t i = 0; i < length; i++) hash = (hash ^ bytes[i]) * 1099511628211ULL; /* FNV-1a 64 */
  return hash;
}

static void signature(const listing *l, char result[17]) {
  uint64_t hash = 14695981039346656037ULL;
  for (size_t i = 0; i < l->count; i++) hash = feed(hash, l->paths[i], strlen(l->paths[i]) + 1);
  hash = feed(hash, l->kinds ? l->kinds : "", l->count);
  hash = feed(hash, l->numbers ? (const void *)l->numbers : "", l->used * sizeof(double));
  snprintf(result, 17, "%016llx", (unsigned long long)hash);
}

/* Listings made by treeSignatures, waiting for walkTree (main thread only). */
typedef struct {
  char *dir;
  listing l;
} kept;
static kept *keep;
static size_t kept_count;

static void forget_kept(void) {
  for (size_t i = 0; i < kept_count; i++) {
    free(keep[i].dir);
    free_listing(&keep[i].l);
  }
  free(keep);
  keep = NULL;
  kept_count = 0;
}

static int read_path(napi_env env, napi_value value, char path[4096]) {
  size_t length;
  return napi_get_value_string_utf8(env, value, path, 4096, &length) == napi_ok && length < 4095 ? 0 : -1;
}

/* A set of trees walked by a few threads. */
typedef struct {
  char **dirs;
  listing *listings;
  int *status;
  size_t count, next;
  pthread_mutex_t lock;
  pthread_t ids[8];
  size_t started;
} batch;

static void *work(void *argument) {
  batch *b = argument;
  for (;;) {
    pthread_mutex_lock(&b->lock);
    size_t i = b->next++;
    pthread_mutex_unlock(&b->lock);
    if (i >= b->count) return NULL;
    b->status[i] = list_tree(b->dirs[i], &b->listings[i]);
  }
}

/* Takes ownership of dirs. NULL when out of memory. */
static batch *new_batch(char **dirs, size_t count) {
  batch *b = calloc(1, sizeof *b);
  size_t n = count ? count : 1;
  if (b) {
    b->dirs = dirs;
    b->count = count;
    b->listings = calloc(n, sizeof(listing));
    b->status = calloc(n, sizeof(int));
    pthread_mutex_init(&b->lock, NULL);
  }
  if (!b || !b->listings || !b->status) {
    if (b) {
      free(b->listings);
      free(b->status);
      free(b);
    }
    return NULL;
  }
  return b;
}

static void start_batch(batch *b, size_t threads) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  size_t most = cores < 1 ? 1 : cores > 8 ? 8 : (size_t)cores;
  if (threads > most) threads = most;
  for (size_t t = 0; t < threads && t < b->count; t++)
    if (pthread_create(&b->ids[b->started], NULL, work, b) == 0) b->started++;
}

/* The calling thread helps with what is left, then waits for the others. */
static void finish_batch(batch *b) {
  work(b);
  for (size_t t = 0; t < b->started; t++) pthread_join(b->ids[t], NULL);
  b->started = 0;
}

static void free_batch(batch *b) {
  if (!b) return;
  for (size_t i = 0; i < b->count; i++) {
    free(b->dirs[i]);
    free_listing(&b->listings[i]);
  }
  free(b->dirs);
  free(b->listings);
  free(b->status);
  pthread_mutex_destroy(&b->lock);
  free(b);
}

/* Walks started by startTreeSignatures, still running in the background. */
static batch *pending;

static void free_paths(char **dirs, size_t count) {
  for (size_t i = 0; i < count; i++) free(dirs[i]);
  free(dirs);
}

static char **read_paths(napi_env env, napi_value array, uint32_t *count) {
  if (napi_get_array_length(env, array, count) != napi_ok) return NULL;
  char **dirs = calloc(*count ? *count : 1, sizeof(char *));
  for (uint32_t i = 0; dirs && i < *count; i++) {
    napi_value item;
    char path[4096];
    if (napi_get_element(env, array, i, &item) != napi_ok || read_path(env, item, path) != 0 || !(dirs[i] = strdup(path))) {
      free_paths(dirs, i);
      return NULL;
    }
  }
  return dirs;
}

/* The paths a function was called with (its first argument, an array), or NULL. */
static char **paths_argument(napi_env env, napi_callback_info info, uint32_t *count) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  return read_paths(env, argv[0], count);
}

/* startTreeSignatures(dirs): begin walking in the background; treeSignatures collects the results. */
static napi_value start_tree_signatures(napi_env env, napi_callback_info info) {
  napi_value result;
  uint32_t count = 0;
  napi_get_undefined(env, &result);
  char **dirs = pending ? NULL : paths_argument(env, info, &count);
  if (!dirs) return result;
  pending = new_batch(dirs, count);
  if (!pending) {
    free_paths(dirs, count);
    return result;
  }
  /* One core is left to the main thread, which goes on loading the build meanwhile (and helps when it asks for the results). */
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  start_batch(pending, cores > 1 ? (size_t)cores - 1 : 1);
  return result;
}

static napi_value tree_signatures(napi_env env, napi_callback_info info) {
  napi_value result;
  uint32_t count = 0;
  napi_get_undefined(env, &result);
  char **dirs = paths_argument(env, info, &count);
  if (!dirs) return result;
  forget_kept();
  batch *early = pending;
  pending = NULL;
  if (early) finish_batch(early);
  /* Each requested tree: from the early walk when it had it, else walked now. */
  listing **found = calloc(count ? count : 1, sizeof(listing *));
  int *status = calloc(count ? count : 1, sizeof(int));
  char **missing = calloc(count ? count : 1, sizeof(char *));
  size_t missing_count = 0;
  batch *late = NULL;
  if (found && status && missing) {
    for (uint32_t i = 0; i < count; i++) {
      for (size_t j = 0; early && j < early->count && !found[i]; j++) {
        if (early->dirs[j] && strcmp(early->dirs[j], dirs[i]) == 0) {
          found[i] = &early->listings[j];
          status[i] = early->status[j];
        }
      }
      if (!found[i]) missing[missing_count++] = strdup(dirs[i]);
    }
    late = new_batch(missing, missing_count);
    if (late) {
      missing = NULL;
      start_batch(late, 7);
      finish_batch(late);
      for (uint32_t i = 0, k = 0; i < count; i++) {
        if (found[i]) continue;
        found[i] = &late->listings[k];
        status[i] = late->status[k++];
      }
      keep = calloc(count ? count : 1, sizeof(kept));
    }
  }
  if (late && keep) {
    napi_create_array_with_length(env, count, &result);
    for (uint32_t i = 0; i < count; i++) {
      napi_value value;
      char hex[17];
      if (found[i] && status[i] == 0) {
        signature(found[i], hex);
        napi_create_string_utf8(env, hex, 16, &value);
        keep[kept_count].dir = dirs[i];
        keep[kept_count++].l = *found[i];
        memset(found[i], 0, sizeof(listing));
        dirs[i] = NULL;
      } else {
        napi_get_undefined(env, &value);
      }
      napi_set_element(env, result, i, value);
    }
  }
  if (missing) free_paths(missing, missing_count);
  free_paths(dirs, count);
  free(found);
  free(status);
  free_batch(early);
  free_batch(late);
  return result;
}

static napi_value walk_tree(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  char path[4096];
  napi_get_undefined(env, &result);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || read_path(env, argv[0], path) != 0) return result;
  listing l = {0};
  int status = -1;
  for (size_t i = 0; i < kept_count; i++) {
    if (keep[i].dir && strcmp(keep[i].dir, path) == 0) {
      l = keep[i].l;
      memset(&keep[i].l, 0, sizeof keep[i].l);
      free(keep[i].dir);
      keep[i].dir = NULL;
      status = 0;
      break;
    }
  }
  if (status != 0) status = list_tree(path, &l);
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
  free_listing(&l);
  return result;
}

/*
 * filesSignature(paths): [one hash of every path with the stat numbers of what it names (links followed),
 * or with its absence; the latest of their mtimes and ctimes], or undefined when a path cannot be looked at
 * (a permission, a name too long).
 */
static napi_value files_signature(napi_env env, napi_callback_info info) {
  napi_value result;
  uint32_t count = 0;
  napi_get_undefined(env, &result);
  char **paths = paths_argument(env, info, &count);
  if (!paths) return result;
  uint64_t hash = 14695981039346656037ULL;
  double newest = 0;
  int failed = 0;
  for (uint32_t i = 0; i < count && !failed; i++) {
    struct stat st;
    hash = feed(hash, paths[i], strlen(paths[i]) + 1);
    if (stat(paths[i], &st) == 0) {
      double n[5];
      stat_numbers(&st, n);
      hash = feed(hash, "=", 1);
      hash = feed(hash, n, sizeof n);
      if (n[0] > newest) newest = n[0];
      if (n[1] > newest) newest = n[1];
    } else if (errno == ENOENT || errno == ENOTDIR) {
      hash = feed(hash, "-", 1);
    } else {
      failed = 1;
    }
  }
  free_paths(paths, count);
  if (failed) return result;
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hash);
  napi_value signature, latest;
  napi_create_string_utf8(env, hex, 16, &signature);
  napi_create_double(env, newest, &latest);
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, signature);
  napi_set_element(env, result, 1, latest);
  return result;
}

static napi_value hex_digest(napi_env env, const void *data, size_t length) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  napi_value result;
  if (EVP_Digest(data, length, digest, &size, EVP_sha256(), NULL) != 1) {
    napi_get_undefined(env, &result);
    return result;
  }
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned int i = 0; i < size; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  napi_create_string_latin1(env, hex, 2 * size, &result);
  return result;
}

static napi_value sha256(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  napi_valuetype type;
  napi_get_undefined(env, &result);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok) return result;
  if (type != napi_string) {
    void *data;
    size_t length;
    bool is_buffer = false;
    if (napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[0], &data, &length) != napi_ok) return result;
    return hex_digest(env, data, length);
  }
  char path[4096];
  if (read_path(env, argv[0], path) != 0) return result;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return result;
  size_t size = 0, room = 65536;
  char *data = malloc(room);
  ssize_t got;
  while (data && (got = read(fd, data + size, room - size)) > 0) {
    size += (size_t)got;
    if (size == room) {
      char *grown = realloc(data, room *= 2);
      if (!grown) {
        free(data);
        data = NULL;
      } else {
        data = grown;
      }
    }
  }
  int failed = got < 0;
  close(fd);
  if (data && !failed) result = hex_digest(env, data, size);
  free(data);
  return result;
}

static void free_strings(char **strings) {
  for (size_t i = 0; strings && strings[i]; i++) free(strings[i]);
  free(strings);
}

/* One program run: its arguments going in, its outputs coming out. */
typedef struct {
  char *program, **argv, **envp, *cwd;
  int spawn_error, status, signal;
  char *out, *err;
  size_t out_size, err_size;
  napi_deferred deferred;
  napi_threadsafe_function done;
} run_job;

static void free_job(run_job *job) {
  free(job->program);
  free_strings(job->argv);
  free_strings(job->envp);
  free(job->cwd);
  free(job->out);
  free(job->err);
  free(job);
}

static int append(char **data, size_t *size, const char *chunk, size_t length) {
  char *grown = realloc(*data, *size + length + 1);
  if (!grown) return -1;
  memcpy(grown + *size, chunk, length);
  *size += length;
  *data = grown;
  return 0;
}

static void run_execute(run_job *job) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    job->spawn_error = errno;
    return;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    job->spawn_error = errno;
    close(out[0]);
    close(out[1]);
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  if (job->cwd) posix_spawn_file_actions_addchdir_np(&actions, job->cwd);
  /* As Node's own spawn: the program starts with no signal blocked and every one at its default (Node ignores SIGPIPE). */
  posix_spawnattr_t attributes;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int spawned = posix_spawnp(&pid, job->program, &actions, &attributes, job->argv, job->envp);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  if (spawned != 0) {
    job->spawn_error = spawned;
    close(out[0]);
    close(err[0]);
    return;
  }
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_count = 2;
  char chunk[65536];
  while (open_count > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = read(fds[i].fd, chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_count--;
      } else if (i == 0) {
        append(&job->out, &job->out_size, chunk, (size_t)got);
      } else {
        append(&job->err, &job->err_size, chunk, (size_t)got);
      }
    }
  }
  for (int i = 0; i < 2; i++)
    if (fds[i].fd >= 0) close(fds[i].fd);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  job->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  job->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* The job's promise settled, on the main thread. */
static void run_settle(napi_env env, run_job *job) {
  napi_value result;
  if (job->spawn_error) {
    napi_value code, message;
    const char *name = job->spawn_error == ENOENT ? "ENOENT" : job->spawn_error == EACCES ? "EACCES" : "ESPAWN";
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, strerror(job->spawn_error), NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &result);
    napi_reject_deferred(env, job->deferred, result);
  } else {
    napi_value value;
    void *copy;
    napi_create_object(env, &result);
    napi_create_int32(env, job->status, &value);
    napi_set_named_property(env, result, "status", value);
    napi_create_int32(env, job->signal, &value);
    napi_set_named_property(env, result, "signal", value);
    napi_create_buffer_copy(env, job->out_size, job->out ? job->out : "", &copy, &value);
    napi_set_named_property(env, result, "stdout", value);
    napi_create_buffer_copy(env, job->err_size, job->err ? job->err : "", &copy, &value);
    napi_set_named_property(env, result, "stderr", value);
    napi_resolve_deferred(env, job->deferred, result);
  }
}

/*
 * Each run has a thread of its own, which hands the finished job back through a thread-safe function:
 * libuv's thread pool, started at the first run, held the main thread about a millisecond while it
 * started its threads. The function keeps the event loop alive only while runs are out.
 */
typedef struct {
  napi_threadsafe_function done;
  size_t running;
} runner;

static void run_finish(napi_env env, napi_value callback, void *context, void *data) {
  (void)callback;
  runner *state = context;
  run_job *job = data;
  /* Without an environment (it is going away) there is no promise left to settle. */
  if (env) run_settle(env, job);
  free_job(job);
  if (env && --state->running == 0) napi_unref_threadsafe_function(env, state->done);
}

static void *run_thread(void *data) {
  run_job *job = data;
  napi_threadsafe_function done = job->done;
  run_execute(job);
  /* From here the job is the main thread's; after napi_closing the function is not to be used again. */
  if (napi_call_threadsafe_function(done, job, napi_tsfn_blocking) == napi_ok)
    napi_release_threadsafe_function(done, napi_tsfn_release);
  else
    free_job(job);
  return NULL;
}

/* Kept for the environment's life (a few bytes): a run's thread may still hold the function when it ends. */
static void keep_runner(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint;
}

static runner *runner_of(napi_env env) {
  runner *state = NULL;
  if (napi_get_instance_data(env, (void **)&state) == napi_ok && state) return state;
  napi_value name;
  state = calloc(1, sizeof *state);
  if (!state || napi_create_string_utf8(env, "homecloud.run", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, state, run_finish, &state->done) != napi_ok) {
    free(state);
    return NULL;
  }
  napi_unref_threadsafe_function(env, state->done);
  napi_set_instance_data(env, state, keep_runner, NULL);
  return state;
}

/* A JavaScript array of strings as a NULL-terminated C array. */
static char **read_strings(napi_env env, napi_value array) {
  uint32_t count;
  if (napi_get_array_length(env, array, &count) != napi_ok) return NULL;
  char **strings = calloc(count + 1, sizeof(char *));
  for (uint32_t i = 0; strings && i < count; i++) {
    napi_value item;
    size_t length;
    if (napi_get_element(env, array, i, &item) != napi_ok || napi_get_value_string_utf8(env, item, NULL, 0, &length) != napi_ok ||
        !(strings[i] = malloc(length + 1)) || napi_get_value_string_utf8(env, item, strings[i], length + 1, &length) != napi_ok) {
      free_strings(strings);
      return NULL;
    }
  }
  return strings;
}

static napi_value run(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], promise;
  napi_valuetype type = napi_undefined;
  char path[4096];
  run_job *job = calloc(1, sizeof *job);
  if (!job || napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    free(job);
    napi_throw_error(env, NULL, "run(program, argv, env, cwd?) expects strings");
    return NULL;
  }
  if (read_path(env, argv[0], path) == 0) job->program = strdup(path);
  job->argv = read_strings(env, argv[1]);
  job->envp = read_strings(env, argv[2]);
  if (argc > 3) napi_typeof(env, argv[3], &type);
  if (type == napi_string && read_path(env, argv[3], path) == 0) job->cwd = strdup(path);
  if (!job->program || !job->argv || !job->argv[0] || !job->envp) {
    free(job->program);
    free_strings(job->argv);
    free_strings(job->envp);
    free(job->cwd);
    free(job);
    napi_throw_error(env, NULL, "run(program, argv, env, cwd?) expects strings");
    return NULL;
  }
  runner *state = runner_of(env);
  if (!state || napi_acquire_threadsafe_function(state->done) != napi_ok) {
    free_job(job);
    napi_throw_error(env, NULL, "run: cannot report back to JavaScript");
    return NULL;
  }
  job->done = state->done;
  napi_create_promise(env, &job->deferred, &promise);
  if (state->running++ == 0) napi_ref_threadsafe_function(env, state->done);
  /* The thread blocks every signal (they are the main thread's to handle): it is made with them blocked. */
  pthread_attr_t attributes;
  pthread_t thread;
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &before);
  pthread_attr_init(&attributes);
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  int started = pthread_create(&thread, &attributes, run_thread, job);
  pthread_attr_destroy(&attributes);
  pthread_sigmask(SIG_SETMASK, &before, NULL);
  if (started != 0) {
    napi_release_threadsafe_function(state->done, napi_tsfn_release);
    if (--state->running == 0) napi_unref_threadsafe_function(env, state->done);
    job->spawn_error = started;
    run_settle(env, job);
    free_job(job);
  }
  return promise;
}

/* isatty(fd): node:tty would load Node's whole network stack (about 7 ms) to say it. */
static napi_value is_terminal(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) fd = -1;
  napi_get_boolean(env, fd >= 0 && isatty(fd) == 1, &result);
  return result;
}

/*
 * A file of compact JSON records keyed by strings (src/build/keyed-json.ts), read into one buffer that stays
 * between calls: a quick build looks up a few records of a 162 KB manifest, and a fresh buffer for each read
 * costs a page fault per 4 KB (15 to 20 us each on some virtual machines). Only the main thread calls.
 */
static char *records_buffer;
static size_t records_capacity;

static ssize_t read_records_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -1;
  }
  size_t size = (size_t)st.st_size;
  if (size + 1 > records_capacity) {
    char *grown = realloc(records_buffer, size + 1);
    if (!grown) {
      close(fd);
      return -1;
    }
    records_buffer = grown;
    records_capacity = size + 1;
  }
  size_t done = 0;
  while (done < size) {
    ssize_t got = pread(fd, records_buffer + done, size - done, (off_t)done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    done += (size_t)got;
  }
  close(fd);
  /* A file that shrank while it was read is read as far as it went. */
  return (ssize_t)done;
}

/* Whether the `"` at `at` opens a key: in compact JSON a key follows `{` or `,`, and inside a string a `"` follows a backslash. */
static bool starts_key(const char *bytes, size_t at) {
  return at > 0 && (bytes[at - 1] == ',' || bytes[at - 1] == '{');
}

/* The first key `needle` (`"key":` or the start of one) in the bytes, or -1. */
static ssize_t find_key(const char *bytes, size_t size, const char *needle, size_t length) {
  for (size_t from = 0; from + length <= size;) {
    const char *found = memmem(bytes + from, size - from, needle, length);
    if (!found) return -1;
    size_t at = (size_t)(found - bytes);
    if (starts_key(bytes, at)) return (ssize_t)at;
    from = at + 1;
  }
  return -1;
}

/* The end (exclusive) of the object or array that starts at `start`, or 0 when there is none. */
static size_t value_end(const char *bytes, size_t size, size_t start) {
  if (start >= size || (bytes[start] != '[' && bytes[start] != '{')) return 0;
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < size; i++) {
    char byte = bytes[i];
    if (in_string) {
      if (byte == '\\') i++;
      else if (byte == '"') in_string = false;
    } else if (byte == '"') in_string = true;
    else if (byte == '[' || byte == '{') depth++;
    else if ((byte == ']' || byte == '}') && --depth == 0) return i + 1;
  }
  return 0;
}

/*
 * findRecords(path, needles): for each needle (`"key":`, as JSON.stringify writes the key), the record's
 * [start, end, text] or null; keyStarts(path, needle): whether some key begins with the needle (`"prefix`).
 * Both undefined when the file cannot be read. Byte for byte what KeyedJson finds in the same bytes.
 */
static napi_value find_records(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result, undefined;
  char path[4096];
  uint32_t count = 0;
  napi_get_undefined(env, &undefined);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || read_path(env, argv[0], path) != 0 ||
      napi_get_array_length(env, argv[1], &count) != napi_ok)
    return undefined;
  ssize_t size = read_records_file(path);
  if (size < 0) return undefined;
  napi_create_array_with_length(env, count, &result);
  for (uint32_t i = 0; i < count; i++) {
    napi_value item, value = NULL;
    size_t length;
    char needle[4096];
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || napi_get_value_string_utf8(env, item, needle, sizeof needle, &length) != napi_ok ||
        length >= sizeof needle - 1)
      return undefined;
    ssize_t at = find_key(records_buffer, (size_t)size, needle, length);
    size_t end = at < 0 ? 0 : value_end(records_buffer, (size_t)size, (size_t)at + length);
    if (end) {
      size_t start = (size_t)at + length;
      napi_value number, text;
      napi_create_array_with_length(env, 3, &value);
      napi_create_double(env, (double)start, &number);
      napi_set_element(env, value, 0, number);
      napi_create_double(env, (double)end, &number);
      napi_set_element(env, value, 1, number);
      napi_create_string_utf8(env, records_buffer + start, end - start, &text);
      napi_set_element(env, value, 2, text);
    } else {
      napi_get_null(env, &value);
    }
    napi_set_element(env, result, i, value);
  }
  return result;
}

static napi_value key_starts(napi_env env, napi_callback_info info) {
  size_t argc = 2, length;
  napi_value argv[2], result, undefined;
  char path[4096], needle[4096];
  napi_get_undefined(env, &undefined);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || read_path(env, argv[0], path) != 0 ||
      napi_get_value_string_utf8(env, argv[1], needle, sizeof needle, &length) != napi_ok || length >= sizeof needle - 1)
    return undefined;
  ssize_t size = read_records_file(path);
  if (size < 0) return undefined;
  napi_get_boolean(env, find_key(records_buffer, (size_t)size, needle, length) >= 0, &result);
  return result;
}

/* The CPUs this process may run on, as os.availableParallelism() counts them: node:os alone costs 0.4 ms to load. */
static napi_value parallelism(napi_env env, napi_callback_info info) {
  (void)info;
  cpu_set_t set;
  int count = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
  if (count < 1) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    count = online > 0 ? (int)online : 1;
  }
  napi_value result;
  napi_create_int32(env, count, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor functions[] = {
      {"startTreeSignatures", NULL, start_tree_signatures, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"treeSignatures", NULL, tree_signatures, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"filesSignature", NULL, files_signature, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"walkTree", NULL, walk_tree, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"sha256", NULL, sha256, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"run", NULL, run, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"isTerminal", NULL, is_terminal, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"findRecords", NULL, find_records, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"keyStarts", NULL, key_starts, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"parallelism", NULL, parallelism, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
