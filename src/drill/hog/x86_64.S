# A memory hog for `radar-deploy drill memory` (src/drill/memory.rs), uploaded into an app
# container and run there with exec: it needs no libc, no shell, nothing of the image (a
# FROM scratch image has none). Build: scripts/drill-hog.sh.
#
# It removes its own file (argv[0], when given an argument), points the kernel's OOM killer
# at the container's main process (PID 1, the same user: raising its oom_score_adj needs no
# privilege), forks into 8 processes, and each allocates and touches memory until the
# container's memory limit is reached. The OOM killer scores a task by its memory plus
# oom_score_adj × limit/1000 (integer division: 1000 scores slightly less than the whole
# limit), so one hog holding nearly all of it would outscore PID 1 and be killed alone;
# eight holding an eighth each cannot. PID 1 dies, and the container with it.
        .globl _start
        .text
_start:
        mov     (%rsp), %rcx            # argc
        cmp     $1, %rcx
        jle     1f
        mov     $87, %eax               # unlink(argv[0])
        mov     8(%rsp), %rdi
        syscall
1:
        mov     $2, %eax                # open("/proc/1/oom_score_adj", O_WRONLY)
        lea     path(%rip), %rdi
        mov     $1, %esi
        xor     %edx, %edx
        syscall
        test    %eax, %eax
        js      grow
        mov     %eax, %edi              # write(fd, "1000", 4)
        mov     $1, %eax
        lea     value(%rip), %rsi
        mov     $4, %edx
        syscall
        mov     $3, %ebx                # fork three times: 8 hogs
2:
        mov     $57, %eax               # fork()
        syscall
        dec     %ebx
        jnz     2b
grow:
        mov     $9, %eax                # mmap(0, 1 MiB, RW, PRIVATE|ANONYMOUS, -1, 0)
        xor     %edi, %edi
        mov     $0x100000, %esi
        mov     $3, %edx
        mov     $0x22, %r10d
        mov     $-1, %r8
        xor     %r9d, %r9d
        syscall
        cmp     $-4096, %rax
        ja      grow                    # failed: try again (the kernel frees memory)
        mov     $256, %ecx
touch:
        movb    $1, (%rax)              # touch every page: only touched pages count
        add     $4096, %rax
        dec     %ecx
        jnz     touch
        jmp     grow
path:   .asciz  "/proc/1/oom_score_adj"
value:  .ascii  "1000"
