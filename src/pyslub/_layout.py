"""Flat layout of everything the allocator decides with, shared by the compiled core and its
plain-Python twin.

Every piece of allocator state lives in one mapping (the *segment*), as 64-bit words, never in
Python objects: the page records, the buddy free lists, the cache descriptors with their node
lists and locks, the per-cpu records, the counters, and the object state bytes.  A forked
child therefore gets a consistent copy of all of it (the segment is MAP_PRIVATE), and a shared
segment (POSIX shm) carries a whole allocator between processes.  This module holds the word
offsets and bit fields; ``_layout.pxd`` declares the same numbers as C enums for the compiled
modules (``tests/test_layout.py`` checks that the two files agree).

Segment (one mmap; every region starts on a page boundary)::

    +--------+--------------+-----------+---------+--------------+--------+------------------+
    | header | descriptors  | page recs | meta    | object state | meta   |      arena       |
    | 64 KiB | MAX_CACHES x | of arena  | page    | 1 byte per   | region | objects; address |
    |        | DESC_STRIDE  | (struct   | records | 8 arena      | (cpu   | = byte offset in |
    |        |              |  page)    |         | bytes        | recs,  | the arena; page  |
    |        |              |           |         |              | stats, | 0 reserved: 0 is |
    |        |              |           |         |              | sheaves| NULL             |
    +--------+--------------+-----------+---------+--------------+--------+------------------+

After the arena the mapping has GUARD_BYTES of never-used address space (no memory behind it
until touched): a word loaded at ``object + offset`` from a corrupted list can land there, never
outside the mapping.

Cache ids, descriptors and cpu records are never reused within a Memory (an operation racing
the destroy of its cache touches only the dead cache's own records); counter blocks are reused,
as counter blocks only.

Page record (one per 4 KiB page, "struct page", SLUB view)::

    [freelist][counters][slab_cache][flags][head][next][prev][pages]
     ^^^^^^^^^^^^^^^^^^ one 16-byte-aligned double word: cmpxchg_double_slab() swaps both.

No object view, ``Memory.raw`` range or address reaches anything but the arena.
"""

import cython

i64 = cython.longlong   # the word type (a ctypedef in _layout.pxd); for uncompiled annotations

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT            # 4 KiB pages, as on x86-64
MAX_ORDER = 11                         # buddy orders 0 .. MAX_ORDER-1, as v4.4 (must fit flags)

# ---- segment header (word offsets) -----------------------------------------------------------
SEG_MAGIC = 0x317642554C535950         # b"PYSLUBv1" read as a little-endian word
SEG_VERSION = 6                        # bumped whenever any offset below changes
HDR_WORDS = 8192                       # 64 KiB
H_MAGIC = 0
H_VERSION = 1
H_SEG_BYTES = 2
H_NR_CPUS = 3
H_MAX_CACHES = 4
H_ARENA_OFF = 5        # byte offsets in the segment ...
H_ARENA_BYTES = 6
H_PM_OFF = 7           # ... of the arena's page records
H_STATE_OFF = 8        # ... of the object state bytes
H_META_OFF = 9         # ... of the metadata region
H_META_BYTES = 10
H_META_PM_OFF = 11     # ... of the metadata region's page records
H_DESC_OFF = 12        # ... of the cache descriptors
H_NR_CACHES = 13       # descriptors handed out so far (ids are never reused)
H_FLAGS = 14           # MEM_* below
H_TID_STEP = 15
H_REG_LOCK = 16        # mutex: cache registry (create, destroy, lookup by name)
H_ZONE_LOCK = 17       # mutex: the arena's buddy allocator
H_META_LOCK = 18       # mutex: the metadata region's buddy allocator
H_NR_SEATS = 19
H_FAIL_AFTER = 20      # fault injection: page allocations left before failing (<0: off)
H_CPU_BUMP = 21        # [registry lock] next free word of the cpu-record chunk (meta offset)
H_CPU_BUMP_END = 22    # [registry lock] end of that chunk
H_STATS_POOL = 23      # [registry lock] counter blocks of destroyed caches (a stack, meta offsets)
H_FREE_AREA = 24       # arena buddy lists: per order (head page, nr_free) -> 2 * MAX_ORDER
H_NR_FREE_PAGES = 46
H_META_FREE_AREA = 48  # metadata buddy lists, same shape
H_META_NR_FREE = 70
H_SEATS = 128          # NR_SEATS words: owner token of each stats seat (0 = free)
H_CPU_USERS = 256      # nr_cpus (<= MAX_CPUS) words: threads bound to each cpu (default policy)
MAX_CPUS = 1024
H_CPU_USERS_END = H_CPU_USERS + MAX_CPUS
# shared segments (POSIX shm): every process attached, and the stop-the-world recovery
H_GEN = 1280           # SLUB generation of new caches (GEN_*)
H_OWNER_OFF = 1281     # byte offset of the owner bytes (one per 8 arena bytes), 0: private
H_RECOVER = 1282       # tid of the thread running recover() (0: none): the gate is closed
H_RECOVERIES = 1283    # recover() runs completed
H_DAMAGED = 1284       # locks or cpu claims taken over from a dead holder since the last recover()
H_PURE_OP = 1285       # uncompiled cores: pid of the process inside an operation (0: none)
H_CORE = 1286          # CORE_* of the process that created a shared segment (they cannot mix)
H_SEAT_GATE = 1288     # NR_SEATS words: 1 while the seat's thread is inside an operation
H_GATE_SHARED = 1408   # MAX_PROCS words: threads without a seat inside an operation, per
                       # process slot (atomic adds)
H_PROCS = 1536         # MAX_PROCS records of PROC_STRIDE words (slot 0 unused)
MAX_PROCS = 64         # a slot fits the owner byte's value range used (1..63)
PROC_STRIDE = 4
P_PID = 0              # pid of the process holding the slot (0: free)
P_START = 1            # its start time (clock ticks after boot, /proc/<pid>/stat field 22)
P_STATE = 2            # PS_* below
P_ATTACHES = 3         # attach count of the slot (diagnostics)
PS_FREE = 0
PS_ATTACHED = 1        # the process attached and has not closed
PS_CLOSED = 2          # it closed; its objects that are still live are not orphans
PS_DEAD = 3            # it died attached: its live objects are orphans until freed
H_PROCS_END = H_PROCS + MAX_PROCS * PROC_STRIDE
GUARD_BYTES = (4 << 20) + 2 * PAGE_SIZE   # > the largest object offset (KMALLOC_MAX_SIZE)
CPU_CHUNK_BYTES = 64 << 10                # cpu records are carved from chunks this big

# Memory flags (H_FLAGS)
MEM_CHECKS = 1         # safe by default: object state checked on every alloc and free
MEM_SHARED = 2         # a POSIX shm segment: processes attach to it by name
MEM_READY = 4          # shared: the creator finished (kmalloc caches made); attach waits for it
CORE_COMPILED = 1
CORE_PURE = 2

# ---- stats seats -------------------------------------------------------------------------------
# Counters are kept per (cpu, seat).  A thread writes only the words of its own seat, so a plain
# increment is exact even when several threads run as the same cpu; threads beyond NR_SEATS share
# the last seat and add atomically.
NR_SEATS = 16
SHARED_SEAT = NR_SEATS         # index of the shared seat: NR_SEATS + 1 seats in all

# ---- cache descriptor (struct kmem_cache + kmem_cache_node + node_barn), word offsets --------
DESC_STRIDE = 64
D_STATE = 0            # DS_* below
D_GEN = 1              # SLUB generation: GEN_*
D_FLAGS = 2            # SLAB_* | OBJECT_POISON | CMPXCHG_DOUBLE
D_OBJECT_SIZE = 3
D_SIZE = 4
D_ALIGN = 5
D_OFFSET = 6
D_INUSE = 7
D_ORDER = 8            # oo
D_OBJECTS = 9
D_MIN_ORDER = 10       # min
D_MIN_OBJECTS = 11
D_SHEAF_CAPACITY = 12
D_CPU_OFF = 13         # word offset (in the metadata region) of the cpu records
D_STATS_OFF = 14       # word offset of the counters: [cpu][seat][NR_STATS]
D_KMALLOC = 15         # index into KMALLOC_SIZES for kmalloc caches, else -1
D_NAME = 16            # 32 bytes, NUL padded
D_NAME_WORDS = 4
D_MIN_PARTIAL = 24     # tunables (sysfs-writable)
D_CPU_PARTIAL = 25
D_FB_STRATEGY = 26     # default free_bulk strategy (FB_*)
D_LOOKAHEAD = 27
D_RANDOM = 28          # s->random (CONFIG_SLAB_FREELIST_HARDENED): the free pointer XOR key
D_RANDOM_SEED = 29     # seed of random_seq and of shuffle_freelist's start positions
D_SHUFFLE_POS = 30     # atomic: new slabs shuffled so far (the start position's draw number)
N_LIST_LOCK = 32       # kmem_cache_node: mutex
N_NR_PARTIAL = 33      # [list_lock]
N_PARTIAL_HEAD = 34    # [list_lock]
N_PARTIAL_TAIL = 35    # [list_lock]
N_FULL_HEAD = 36       # [list_lock], SLAB_STORE_USER only
N_FULL_TAIL = 37
N_NR_SLABS = 38        # atomic
N_TOTAL_OBJECTS = 39   # atomic
B_LOCK = 40            # node_barn (sheaves): mutex
B_FULL = 41            # [barn lock] first full sheaf (meta word offset, 0 = none)
B_EMPTY = 42           # [barn lock]
B_NR_FULL = 43
B_NR_EMPTY = 44
D_SHEAF_POOL = 45      # [barn lock] free sheaf blocks of this cache (a stack, meta offsets)
D_NR_SHEAVES = 46      # [barn lock] sheaves allocated and not freed (in use anywhere)
D_PREFILLED = 47       # [barn lock] prefilled sheaves handed out (a list through SH_NEXT)
DESC_NAME_MAX = 32

DS_FREE = 0
DS_LIVE = 1
DS_DEAD = 2

GEN_V44 = 44           # v4.4: cpu slabs, cpu partial lists (the seed's allocator)
GEN_V618 = 618         # 6.18: opt-in per-cpu sheaves above the v4.4 cpu slabs
GEN_V70 = 70           # 7.0: sheaves for every cache, no kmem_cache_cpu

# ---- struct page, SLUB view: word offsets inside one page record -----------------------------
PM_FREELIST = 0      # first free object of the slab (0 = none); for a cpu slab: remote frees only
PM_COUNTERS = 1      # {inuse:16, objects:15, frozen:1}; swapped together with PM_FREELIST
PM_SLAB_CACHE = 2    # id of the owning kmem_cache (0 = not a slab page)
PM_FLAGS = 3         # PG_* bits below, compound order in bits ORDER_SHIFT..
PM_HEAD = 4          # page index of the compound head (a head page points to itself)
PM_NEXT = 5          # lru.next on node lists / buddy lists; cpu-partial chain "next"
PM_PREV = 6          # lru.prev on node lists / buddy lists
PM_PAGES = 7         # cpu-partial chain: pages | pobjects << 32 (overlays lru in the kernel)
PM_STRIDE = 8        # words per page record: 64 bytes, keeps PM_FREELIST 16-byte aligned
PM_STRIDE_SHIFT = 3

# PM_FLAGS bits
PG_SLAB = 1          # head page of a slab
PG_HEAD = 2          # head page of a compound allocation (slab or large kmalloc)
PG_TAIL = 4          # tail page of a compound allocation
PG_BUDDY = 8         # first page of a free block on a buddy free list
PG_LARGE = 16        # head page of a large kmalloc allocation (not a slab)
PG_RESERVED = 32     # never handed out (page 0: makes address 0 NULL)
PG_PARTIAL = 64      # on the node partial list (7.0's SL_partial); kept by every generation
ORDER_SHIFT = 8      # compound / buddy order lives in bits 8..15 of PM_FLAGS
ORDER_MASK = 0xFF

# page.counters bitfield (bit 0..15 inuse, 16..30 objects, 31 frozen), as v4.4 struct page
INUSE_MASK = 0xFFFF
OBJECTS_SHIFT = 16
OBJECTS_MASK = 0x7FFF
FROZEN_BIT = 1 << 31
MAX_OBJS_PER_PAGE = 32767
PAGES_MASK = 0xFFFFFFFF   # cpu-partial chain word: pages in bits 0..31, pobjects above
RECIPROCAL_SHIFT = 32     # object index = (offset * reciprocal_size + HALF) >> SHIFT
RECIPROCAL_HALF = 1 << 31

# ---- struct kmem_cache_cpu + struct slub_percpu_sheaves: one record per cpu ------------------
C_FREELIST = 0       # lockless freelist of the cpu slab                     \ 16-byte aligned
C_TID = 1            # transaction id, TID_BUSY while the cpu is "IRQ-off"   / pair
C_PAGE = 2           # page index of the cpu slab (0 = none)
C_PARTIAL = 3        # page index of the first frozen cpu-partial slab (0 = none)
C_LOCK = 4           # sheaves' local_trylock (spinlock word)
C_MAIN = 5           # sheaves: main sheaf (meta word offset; never 0 while unlocked)
C_BIAS = 6           # tid of the thread holding the record's bias (0: none)
C_INCS = 7           # [bias owner] nesting depth of its current section (0: outside)
C_REVOKE = 8         # 1: the bias is revoked or being revoked (shared mode)
C_SPARE = 9          # sheaves: spare sheaf (0 = none)
C_OWNER = 10         # tid holding the TID_BUSY claim (diagnostics)
C_LAST = 11          # shared mode: the last thread that took the record, and ...
C_RUN = 12           # ... how many times in a row (a long run re-biases the record)
CPU_STRIDE = 16      # 128 bytes: no two cpus share a cache line (or its adjacent-line prefetch)
REBIAS_RUN = 256     # consecutive same-thread acquisitions that re-bias a shared record
CLAIM_BIASED = 1 << 61   # cpu_claim()'s result: the section is a biased one (no atomics)
# tid: cpu + n * TID_STEP, TID_STEP = roundup_pow_of_two(nr_cpus) (CONFIG_PREEMPT); bit 62 set
# while a thread of the cpu is inside a section the kernel would run with IRQs disabled.
TID_BUSY = 1 << 62

# ---- sheaf (struct slab_sheaf), in the metadata region, word offsets --------------------------
SH_NEXT = 0          # barn list link (meta word offset) / pool link
SH_SIZE = 1          # valid pointers in objects[]
SH_CAPACITY = 2
SH_CACHE = 3         # owning cache id
SH_OBJECTS = 4       # objects[capacity]
MAX_FULL_SHEAVES = 10
MAX_EMPTY_SHEAVES = 10
PCS_BATCH_MAX = 32

# ---- object state bytes: one per 8 arena bytes, indexed by addr >> 3 -------------------------
OBJ_FREE = 0         # on a freelist, in a sheaf, or never handed out
OBJ_LIVE = 1         # handed out and not freed
OBJ_FREEING = 2      # being freed by an in-flight free_bulk (duplicates are caught with it)
OBJ_LEAKED = 3       # taken out of circulation by a failed check (leaked on purpose)

# ---- counters: internal index = the 6.18 enum stat_item order (a superset of v4.4's 26 items
# and 7.0's 26), then pyslub's own.  Each generation reports its own enum (STAT_NAMES_*).
ALLOC_PCS = 0
ALLOC_FASTPATH = 1
ALLOC_SLOWPATH = 2
FREE_PCS = 3
FREE_RCU_SHEAF = 4
FREE_RCU_SHEAF_FAIL = 5
FREE_FASTPATH = 6
FREE_SLOWPATH = 7
FREE_FROZEN = 8
FREE_ADD_PARTIAL = 9
FREE_REMOVE_PARTIAL = 10
ALLOC_FROM_PARTIAL = 11
ALLOC_SLAB = 12
ALLOC_REFILL = 13
ALLOC_NODE_MISMATCH = 14
FREE_SLAB = 15
CPUSLAB_FLUSH = 16
DEACTIVATE_FULL = 17
DEACTIVATE_EMPTY = 18
DEACTIVATE_TO_HEAD = 19
DEACTIVATE_TO_TAIL = 20
DEACTIVATE_REMOTE_FREES = 21
DEACTIVATE_BYPASS = 22
ORDER_FALLBACK = 23
CMPXCHG_DOUBLE_CPU_FAIL = 24
CMPXCHG_DOUBLE_FAIL = 25
CPU_PARTIAL_ALLOC = 26
CPU_PARTIAL_FREE = 27
CPU_PARTIAL_NODE = 28
CPU_PARTIAL_DRAIN = 29
SHEAF_FLUSH = 30
SHEAF_REFILL = 31
SHEAF_ALLOC = 32
SHEAF_FREE = 33
BARN_GET = 34
BARN_GET_FAIL = 35
BARN_PUT = 36
BARN_PUT_FAIL = 37
SHEAF_PREFILL_FAST = 38
SHEAF_PREFILL_SLOW = 39
SHEAF_PREFILL_OVERSIZE = 40
SHEAF_RETURN_FAST = 41
SHEAF_RETURN_SLOW = 42
NR_SLUB_STAT_ITEMS_618 = 43
# not in the kernel: how often each synchronisation primitive was used (spec §8)
CMPXCHG_DOUBLE_CPU = 43   # this_cpu_cmpxchg_double attempts (the cpu's (freelist, tid) pair)
CMPXCHG_DOUBLE_SLAB = 44  # cmpxchg_double_slab attempts (a slab's (freelist, counters) pair)
LIST_LOCK = 45            # n->list_lock acquisitions
LOCAL_LOCK = 46           # per-cpu lock acquisitions (the cpu claim of v4.4, the sheaves lock)
BARN_LOCK = 47            # barn lock acquisitions
BIAS_REVOKE = 48          # biases this thread revoked (another thread had the cpu record)
NR_STATS = 49             # words per (cpu, seat) block

# deactivate_slab() / add_partial() placement
DEACTIVATE_TO_HEAD_POS = 0
DEACTIVATE_TO_TAIL_POS = 1

# check_free_addr() results below zero: why an address is not an object of the cache
BAD_NULL = -1
BAD_OUTSIDE = -2
BAD_NOT_SLAB = -3
BAD_OTHER_CACHE = -4
BAD_BOUNDARY = -5
BAD_FREE = -6         # state: already free (a double free) or never handed out
BAD_FREEING = -7      # state: being freed by a call in flight (or earlier in the same array)
BAD_LEAKED = -8       # state: taken out of circulation by a failed check

# deactivate_slab() target of a slab
M_NONE = 0
M_PARTIAL = 1
M_FULL = 2
M_FREE = 3

# free_bulk strategies (pyslub.FREE_BULK_STRATEGIES is the name list, in this order)
FB_FALLBACK = 0
FB_BULK_V2 = 1
FB_DETACHED = 2
FB_LOOKAHEAD_FWD = 3
FB_LOOKAHEAD = 4
FB_SWAP = 5
NR_FREE_BULK = 6

# kernel flag values (include/linux/slab.h, v4.4; SLAB_DEBUG_FREE renamed in v4.6)
SLAB_CONSISTENCY_CHECKS = 0x00000100
SLAB_RED_ZONE = 0x00000400
SLAB_POISON = 0x00000800
SLAB_HWCACHE_ALIGN = 0x00002000
SLAB_STORE_USER = 0x00010000
SLAB_TRACE = 0x00200000          # T: every alloc and free of the cache is traced
SLAB_DEBUG_FLAGS = (SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER
                    | SLAB_TRACE)
SLAB_NO_USER_FLAGS = 0x10000000  # (6.1) the slab_debug= option does not apply (slub_kunit)
OBJECT_POISON = 0x80000000       # kernel __OBJECT_POISON: poison the object bytes too
CMPXCHG_DOUBLE = 0x40000000      # kernel __CMPXCHG_DOUBLE: slab pair swapped by cmpxchg16b
# kernel build options, per cache in pyslub (pyslub.hardening); bits above the kernel's flags
FREELIST_HARDENED = 1 << 32      # CONFIG_SLAB_FREELIST_HARDENED: free pointers XOR-encoded
FREELIST_RANDOM = 1 << 33        # CONFIG_SLAB_FREELIST_RANDOM: new slabs' freelists shuffled
FREEPTR_MIDDLE = 1 << 34         # v5.7+ placement: the free pointer in the middle of the object

# core allocation results below zero (the public layer turns them into exceptions)
ERR_CORRUPT = -1      # a freelist led to an object that is not free: see the cache's reports

# the branch a __slab_free call took (probe records: pyslub.probe)
PROBE_FROZEN = 1       # into a frozen slab: no list work (FREE_FROZEN)
PROBE_CPU_PARTIAL = 2  # first free into a full slab: frozen onto the cpu partial list
PROBE_NODE_PARTIAL = 3  # full slab put on the node partial list (FREE_ADD_PARTIAL)
PROBE_PARTIAL = 4      # stays where it is (a partial slab stays partial)
PROBE_DISCARD = 5      # became empty with nr_partial >= min_partial: freed (FREE_SLAB)
PROBE_REFUSED = 6      # debug checks refused the list: leaked on purpose
PROBE_ISOLATED = 7     # 7.0: the slab is off every list (a refill holds it)

# report codes of EV_REPORT ring records (slab.REPORT_TEXT renders them)
REP_FP_CORRUPT = 1    # a free pointer leads outside its slab: list truncated
REP_FREELIST_LIVE = 2  # a freelist leads to an object that is handed out (use after free?)
REP_CYCLE = 3         # a cpu freelist has a cycle: truncated
REP_INVALID_FREE = 4  # debug free: not an object of this slab
REP_DOUBLE_FREE = 5   # debug free: object already free
REP_BULK_COUNT = 6    # debug free: list length differs from its count
REP_ALLOC_CHECK = 7   # debug alloc: freelist pointer check fails, slab marked all used
REP_OBJECT = 8        # debug: check_object() failed (pyslub.debug decodes the word)
REP_MARK_USED = 9     # debug alloc: a failed check marked all objects of the slab used
REP_NAIVE_DOUBLE_FREE = 10  # hardened set_freepointer(): an object would point to itself
REP_SHEAF_LIVE = 11   # safe mode: a sheaf given back to slabs holds an object in use: kept out

# v4.4 sysfs names of the counters, in v4.4's enum stat_item order
STAT_NAMES = (
    "alloc_fastpath", "alloc_slowpath", "free_fastpath", "free_slowpath", "free_frozen",
    "free_add_partial", "free_remove_partial", "alloc_from_partial", "alloc_slab",
    "alloc_refill", "alloc_node_mismatch", "free_slab", "cpuslab_flush", "deactivate_full",
    "deactivate_empty", "deactivate_to_head", "deactivate_to_tail", "deactivate_remote_frees",
    "deactivate_bypass", "order_fallback", "cmpxchg_double_cpu_fail", "cmpxchg_double_fail",
    "cpu_partial_alloc", "cpu_partial_free", "cpu_partial_node", "cpu_partial_drain",
)
# 6.18 (enum order; ALLOC_PCS and FREE_PCS print as alloc_cpu_sheaf / free_cpu_sheaf)
STAT_NAMES_618 = (
    "alloc_cpu_sheaf", "alloc_fastpath", "alloc_slowpath", "free_cpu_sheaf", "free_rcu_sheaf",
    "free_rcu_sheaf_fail", "free_fastpath", "free_slowpath", "free_frozen", "free_add_partial",
    "free_remove_partial", "alloc_from_partial", "alloc_slab", "alloc_refill",
    "alloc_node_mismatch", "free_slab", "cpuslab_flush", "deactivate_full", "deactivate_empty",
    "deactivate_to_head", "deactivate_to_tail", "deactivate_remote_frees", "deactivate_bypass",
    "order_fallback", "cmpxchg_double_cpu_fail", "cmpxchg_double_fail", "cpu_partial_alloc",
    "cpu_partial_free", "cpu_partial_node", "cpu_partial_drain", "sheaf_flush", "sheaf_refill",
    "sheaf_alloc", "sheaf_free", "barn_get", "barn_get_fail", "barn_put", "barn_put_fail",
    "sheaf_prefill_fast", "sheaf_prefill_slow", "sheaf_prefill_oversize", "sheaf_return_fast",
    "sheaf_return_slow",
)
# 7.0 / 7.1 (26 items, enum order; alloc_fastpath / free_fastpath now mean "percpu sheaves")
STAT_NAMES_70 = (
    "alloc_fastpath", "alloc_slowpath", "free_rcu_sheaf", "free_rcu_sheaf_fail", "free_fastpath",
    "free_slowpath", "free_add_partial", "free_remove_partial", "alloc_slab",
    "alloc_node_mismatch", "free_slab", "order_fallback", "cmpxchg_double_fail", "sheaf_flush",
    "sheaf_refill", "sheaf_alloc", "sheaf_free", "barn_get", "barn_get_fail", "barn_put",
    "barn_put_fail", "sheaf_prefill_fast", "sheaf_prefill_slow", "sheaf_prefill_oversize",
    "sheaf_return_fast", "sheaf_return_slow",
)
EXTRA_STAT_NAMES = ("cmpxchg_double_cpu", "cmpxchg_double_slab", "list_lock", "local_lock",
                    "barn_lock", "bias_revoke")
NR_SLUB_STAT_ITEMS = 26   # v4.4's (len(STAT_NAMES))

FREE_BULK_STRATEGIES = ("fallback", "bulk-v2", "detached", "lookahead-fwd", "lookahead", "swap")
