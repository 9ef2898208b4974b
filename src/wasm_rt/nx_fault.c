/* The fault handler (see nx_fault.h). Installed once, the first time a
 * runtime asks for guard pages; a process that only uses bounds checks never
 * gets it. The previous dispositions are kept in a table written once, under
 * pthread_once, before the handler can run.
 *
 * Decision, on the faulting thread (async-signal-safe: it reads only a
 * thread-local in the static TLS block, the guard it points at and the
 * siginfo; it runs on the thread's alternate stack, nx_fault_thread_ready):
 *   1. si_code > 0: raised by the kernel for this access, not sent by
 *      kill(2)/sigqueue(2), which cannot forge a positive code;
 *   2. the thread is inside NX_WASM_TRY for a guard-variant memory
 *      (nx_wasm_guard_top->mem), and
 *   3. si_addr lies in that memory's reservation [data, data + 8 GiB + 64 KiB)
 *      (WASM_RT_TRAP_OOB), or just below the thread's stack
 *      (WASM_RT_TRAP_EXHAUSTION: the call-depth budget should make that
 *      impossible, but a crash is the one outcome we must not have).
 * Then it is the sandbox's trap: the mask the interrupted code ran with is
 * restored (the kernel blocked the signal for the handler, and a jump does
 * not undo that) and the thread jumps to its guard with WASM_RT_TRAP_OOB.
 * Otherwise the signal is forwarded to the previous disposition: a
 * SA_SIGINFO handler or a plain one is called (with its sa_mask added),
 * SIG_DFL and SIG_IGN are restored and the signal left to recur (a fault
 * re-executes the access) or raised again (a sent one). Node installs its
 * own handler at startup (V8's WebAssembly trap handler, which forwards what
 * is not V8's), so in Node that is where foreign faults go. */
#include "nx_fault.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "errors.h"
#include "nx_wasm.h"

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static struct sigaction prev_segv, prev_bus; /* written once, before the handler runs */
static int install_failed;

/* The alternate signal stacks we made, freed by the key's destructor when
 * their thread exits. 64 KiB: the handler needs little, but the handler it
 * forwards to (V8's, Node's) runs on it too. */
#define NX_FAULT_ALTSTACK (64u * 1024u)
/* How far below the lowest usable stack address a fault still counts as a
 * stack overflow: the main thread's kernel guard gap is 256 pages; thread
 * stacks have a guard of a page or a few. */
#define NX_FAULT_STACK_GAP ((uintptr_t)1 << 20)
/* And how far above it: whether the reported bounds include a thread's
 * guard pages or not, an address there that faults is one of them. */
#define NX_FAULT_STACK_SLACK ((uintptr_t)64 << 10)
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t altstack_key;
static int key_failed;

/* 1 once this thread is ready; its stack's lowest usable address. */
static __thread int thread_ready __attribute__((tls_model("initial-exec")));
static __thread uintptr_t stack_lo __attribute__((tls_model("initial-exec")));

static void forward(int sig, siginfo_t *si, void *uc) {
  const struct sigaction *prev = sig == SIGBUS ? &prev_bus : &prev_segv;
  sigset_t saved;

  if (prev->sa_flags & SA_SIGINFO || (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN)) {
    pthread_sigmask(SIG_BLOCK, &prev->sa_mask, &saved);
    if (prev->sa_flags & SA_SIGINFO)
      prev->sa_sigaction(sig, si, uc);
    else
      prev->sa_handler(sig);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return;
  }
  if (prev->sa_handler == SIG_IGN && si->si_code <= 0) return; /* a sent signal, ignored */
  /* The default action, as without us. A fault cannot be ignored: the
   * kernel kills on a repeated fault whose signal is ignored too. */
  {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
  }
  if (si->si_code <= 0) raise(sig); /* pending until this handler returns */
}

static void on_fault(int sig, siginfo_t *si, void *uc) {
  nx_wasm_guard_t *g = nx_wasm_guard_top;
  const wasm_rt_memory_t *mem = g ? g->mem : NULL;
  uintptr_t addr = (uintptr_t)si->si_addr;
  int trap = 0;

  if (si->si_code > 0 && mem != NULL) {
    if (mem->data != NULL && addr - (uintptr_t)mem->data < NX_WASM_GUARD_RESERVE)
      trap = WASM_RT_TRAP_OOB;
    else if (stack_lo != 0 && addr < stack_lo + NX_FAULT_STACK_SLACK &&
             stack_lo - addr <= NX_FAULT_STACK_GAP)
      trap = WASM_RT_TRAP_EXHAUSTION;
  }
  if (trap != 0) {
    pthread_sigmask(SIG_SETMASK, &((ucontext_t *)uc)->uc_sigmask, NULL);
    nx_wasm_unwind(g, trap);
  }
  forward(sig, si, uc);
}

static void install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  /* SA_ONSTACK: on the thread's alternate stack (nx_fault_thread_ready
   * gives one to each thread that runs guard-page sandboxes), so that a
   * stack overflow can still be handled. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, NULL, &prev_segv) != 0 || sigaction(SIGBUS, NULL, &prev_bus) != 0 ||
      sigaction(SIGSEGV, &sa, NULL) != 0 || sigaction(SIGBUS, &sa, NULL) != 0) {
    sigaction(SIGSEGV, &prev_segv, NULL);
    install_failed = 1;
  }
}

static int ours(int sig) {
  struct sigaction now;
  return sigaction(sig, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
         now.sa_sigaction == on_fault;
}

static void altstack_free(void *p) {
  stack_t cur, off;
  if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == p) {
    memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, NULL);
  }
  munmap(p, NX_FAULT_ALTSTACK);
}

static void key_init(void) { key_failed = pthread_key_create(&altstack_key, altstack_free) != 0; }

int nx_fault_thread_ready(void) {
  pthread_attr_t attr;
  stack_t cur, ss;
  void *lo = NULL;
  size_t size = 0;

  if (thread_ready) return 0;
  if (pthread_once(&key_once, key_init) != 0 || key_failed) return NX_RC_SYSTEM;
  if (sigaltstack(NULL, &cur) != 0) return NX_RC_SYSTEM;
  if (cur.ss_flags & SS_DISABLE) {
    /* Owned by the key once set: the thread's exit frees it, and a retry
     * after a failed sigaltstack() reuses it. */
    void *mine = pthread_getspecific(altstack_key);
    if (mine == NULL) {
      mine =
          mmap(NULL, NX_FAULT_ALTSTACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mine == MAP_FAILED) return NX_RC_SYSTEM;
      if (pthread_setspecific(altstack_key, mine) != 0) {
        munmap(mine, NX_FAULT_ALTSTACK);
        return NX_RC_SYSTEM;
      }
    }
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = mine;
    ss.ss_size = NX_FAULT_ALTSTACK;
    if (sigaltstack(&ss, NULL) != 0) return NX_RC_SYSTEM;
  }
  /* Without the bounds a stack overflow is not recognised (forwarded, as
   * without us), which is no reason to refuse guard pages. */
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) stack_lo = (uintptr_t)lo;
    pthread_attr_destroy(&attr);
  }
  thread_ready = 1;
  return 0;
}

int nx_fault_ready(void) {
  if (pthread_once(&install_once, install) != 0 || install_failed) return NX_RC_SYSTEM;
  return ours(SIGSEGV) && ours(SIGBUS) ? 0 : NX_RC_SYSTEM;
}
