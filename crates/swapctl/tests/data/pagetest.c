/*
 * pagetest: a program that does to its memory what the kernel lets programs do, and checks
 * every byte, for `swapctl run`'s tests. It knows nothing of swapkit: run it bare and under
 * `swapctl run` and the output must be the same.
 *
 *   pagetest MIB THREADS
 *
 * It maps MIB MiB of private anonymous memory and, each step checked page by page against
 * what it wrote (a stamp of page, version and word: never zero, different everywhere):
 *   1. THREADS threads fill their slices, then each checks every page of the mapping;
 *   2. read(2) from a pipe into pages long written (paged out under a small limit);
 *   3. madvise(MADV_DONTNEED) on a range: it reads zeroes after, then is written again;
 *   4. mremap moves part of the mapping elsewhere, and grows another mapping in place or
 *      by moving it: the data moves with them;
 *   5. fork: the child checks every page it inherited and writes its own versions; the
 *      parent waits for it and checks its own pages are untouched;
 *   6. munmap of a part, and a new mapping in its place reads zeroes.
 * The last line is "pagetest ok" and a checksum of every page's final contents. A mismatch
 * prints where and exits 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define WORDS (PAGE / 8)

static uint64_t *mem;
static size_t pages;
static uint32_t *version; /* per page: the version last written, 0 = zeroes */
static int nthreads;

static uint64_t stamp(uint64_t p, uint64_t v, uint64_t w)
{
	return ((p << 40 | v << 12 | w) * 0x9e3779b97f4a7c15ULL) | 1;
}

static void write_page(uint64_t *base, size_t p, uint32_t v)
{
	for (size_t w = 0; w < WORDS; w++)
		base[p * WORDS + w] = stamp(p, v, w);
}

/* Checks page p of `base`, which should hold version v of page `as` (0: zeroes). */
static int check_page(const uint64_t *base, size_t p, size_t as, uint32_t v, const char *step)
{
	for (size_t w = 0; w < WORDS; w++) {
		uint64_t want = v ? stamp(as, v, w) : 0;
		uint64_t got = base[p * WORDS + w];
		if (got != want) {
			fprintf(stderr, "pagetest: %s: page %zu word %zu: %#llx, want %#llx\n", step,
				p, w, (unsigned long long)got, (unsigned long long)want);
			return 1;
		}
	}
	return 0;
}

static int check_all(const char *step)
{
	int bad = 0;
	for (size_t p = 0; p < pages && !bad; p++)
		bad |= check_page(mem, p, p, version[p], step);
	return bad;
}

static void *fill_slice(void *arg)
{
	long t = (long)arg;
	size_t lo = pages * t / nthreads, hi = pages * (t + 1) / nthreads;
	for (size_t p = lo; p < hi; p++)
		write_page(mem, p, 1);
	return NULL;
}

static void *check_thread(void *arg)
{
	long t = (long)arg;
	/* Every thread walks the whole mapping from its own starting point: the same pages
	 * are faulted by several threads at once. */
	for (size_t k = 0; k < pages; k++) {
		size_t p = (k + pages * t / nthreads) % pages;
		if (check_page(mem, p, p, 1, "threads"))
			return (void *)1;
	}
	return NULL;
}

static int run_threads(void *(*fn)(void *))
{
	pthread_t th[64];
	int bad = 0;
	for (long t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, fn, (void *)t))
			return 1;
	for (int t = 0; t < nthreads; t++) {
		void *r;
		pthread_join(th[t], &r);
		bad |= r != NULL;
	}
	return bad;
}

/* Step 2: a pipe's bytes read(2) into pages written long ago. */
static int read_into(void)
{
	int fd[2];
	if (pipe(fd))
		return 1;
	size_t chunk = 16 * PAGE;
	for (size_t at = 0; at + 16 < pages; at += pages / 8) {
		uint64_t *buf = malloc(chunk);
		for (size_t k = 0; k < 16; k++) {
			for (size_t w = 0; w < WORDS; w++)
				buf[k * WORDS + w] = stamp(at + k, 2, w);
		}
		if (write(fd[1], buf, chunk) != (ssize_t)chunk)
			return 1;
		free(buf);
		size_t got = 0;
		while (got < chunk) {
			ssize_t n = read(fd[0], (char *)(mem + at * WORDS) + got, chunk - got);
			if (n <= 0) {
				perror("pagetest: read into paged memory");
				return 1;
			}
			got += n;
		}
		for (size_t k = 0; k < 16; k++)
			version[at + k] = 2;
	}
	close(fd[0]);
	close(fd[1]);
	return check_all("read(2)");
}

/* Step 3: MADV_DONTNEED drops the range: zeroes, then written again. */
static int dontneed(void)
{
	size_t lo = pages / 3, n = pages / 8;
	if (madvise(mem + lo * WORDS, n * PAGE, MADV_DONTNEED))
		return 1;
	for (size_t p = lo; p < lo + n; p++)
		version[p] = 0;
	if (check_all("madvise"))
		return 1;
	for (size_t p = lo; p < lo + n; p += 2) {
		write_page(mem, p, 3);
		version[p] = 3;
	}
	return check_all("madvise rewrite");
}

/* Step 4: the last quarter moves to a new address and back; a second mapping grows. */
static int remap(void)
{
	size_t lo = pages - pages / 4, n = pages / 4;
	void *to = mmap(NULL, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (to == MAP_FAILED)
		return 1;
	void *moved = mremap(mem + lo * WORDS, n * PAGE, n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (moved != to) {
		perror("pagetest: mremap");
		return 1;
	}
	for (size_t k = 0; k < n; k++)
		if (check_page(moved, k, lo + k, version[lo + k], "mremap moved"))
			return 1;
	if (mremap(moved, n * PAGE, n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, mem + lo * WORDS) !=
	    (void *)(mem + lo * WORDS)) {
		perror("pagetest: mremap back");
		return 1;
	}
	if (check_all("mremap back"))
		return 1;

	size_t gp = pages / 4 > 512 ? 512 : pages / 4;
	uint64_t *g = mmap(NULL, gp * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g == MAP_FAILED)
		return 1;
	for (size_t p = 0; p < gp; p++)
		write_page(g, p, 4);
	/* Long enough for a scanner to find it, and under a small limit to page it out. */
	usleep(100 * 1000);
	uint64_t *g2 = mremap(g, gp * PAGE, 4 * gp * PAGE, MREMAP_MAYMOVE);
	if (g2 == MAP_FAILED) {
		perror("pagetest: mremap grow");
		return 1;
	}
	for (size_t p = 0; p < 4 * gp; p++)
		if (check_page(g2, p, p, p < gp ? 4 : 0, "mremap grown"))
			return 1;
	for (size_t p = gp; p < 4 * gp; p++)
		write_page(g2, p, 4);
	for (size_t p = 0; p < 4 * gp; p++)
		if (check_page(g2, p, p, 4, "mremap grown rewrite"))
			return 1;
	munmap(g2, 4 * gp * PAGE);
	return 0;
}

/* Step 5: the child sees exactly the parent's bytes; neither sees the other's writes. */
static int forked(void)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		if (check_all("fork child"))
			_exit(1);
		for (size_t p = 0; p < pages; p += 3)
			write_page(mem, p, 5);
		for (size_t p = 0; p < pages; p++)
			if (check_page(mem, p, p, p % 3 ? version[p] : 5, "fork child rewrite"))
				_exit(1);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "pagetest: fork child failed (status %#x)\n", st);
		return 1;
	}
	return check_all("fork parent");
}

/* Step 6: an unmapped hole, mapped anew, reads zeroes; the rest is intact. */
static int unmapped(void)
{
	size_t lo = pages / 2, n = pages / 16;
	if (munmap(mem + lo * WORDS, n * PAGE))
		return 1;
	void *again = mmap(mem + lo * WORDS, n * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (again != (void *)(mem + lo * WORDS))
		return 1;
	for (size_t p = lo; p < lo + n; p++)
		version[p] = 0;
	return check_all("munmap");
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: pagetest MIB THREADS\n");
		return 2;
	}
	pages = strtoul(argv[1], NULL, 10) * (1 << 20) / PAGE;
	nthreads = atoi(argv[2]);
	if (pages < 64 || nthreads < 1 || nthreads > 64) {
		fprintf(stderr, "pagetest: at least 1 MiB, 1 to 64 threads\n");
		return 2;
	}
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	version = calloc(pages, sizeof *version);
	if (mem == MAP_FAILED || !version)
		return 1;
	if (run_threads(fill_slice))
		return 1;
	for (size_t p = 0; p < pages; p++)
		version[p] = 1;
	if (run_threads(check_thread) || read_into() || dontneed() || remap() || forked() ||
	    unmapped())
		return 1;
	uint64_t sum = 0;
	for (size_t i = 0; i < pages * WORDS; i++) {
		sum = (sum + mem[i]) * 0x9e3779b97f4a7c15ULL, sum ^= sum >> 32;
	}
	printf("pagetest ok %zu pages %016llx\n", pages, (unsigned long long)sum);
	return 0;
}
