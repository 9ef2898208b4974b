/* The SIGSEGV/SIGBUS handler behind guard-page memories: a fault inside the
 * reservation of the sandbox the faulting thread is running is that
 * sandbox's out-of-bounds trap, a fault on the thread's stack guard while it
 * runs one is a stack overflow trap; every other fault goes to the handler
 * that was installed before ours, as if we were not there. */
#ifndef NX_FAULT_H
#define NX_FAULT_H

/* Installs the handler for SIGSEGV and SIGBUS, once per process (later calls
 * only look). Returns 0 when both signals lead to it now, or a negative
 * nx_rc_t (NX_RC_SYSTEM) when it could not be installed or something
 * replaced it since: guard-page memories must not be used then. */
int nx_fault_ready(void);

/* Prepares the calling thread to run guard-variant sandboxes: an alternate
 * signal stack (unless the thread has one already), so that the handler
 * still runs when the fault is a stack overflow, and the thread's stack
 * bounds, so that it can tell one. Cheap after the first call on a thread;
 * the stack is freed when the thread exits. Returns 0 or NX_RC_SYSTEM. */
int nx_fault_thread_ready(void);

#endif
