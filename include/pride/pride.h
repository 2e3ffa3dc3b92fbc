/**
 * @file pride/pride.h
 * @brief Umbrella header: everything public in pride.
 */
#ifndef PRIDE_PRIDE_H
#define PRIDE_PRIDE_H

#include "pride/status.h"
#include "pride/types.h"
#include "pride/context.h"
#include "pride/collectives.h"
#include "pride/vote.h"
#include "pride/optimizer.h"

#define PRIDE_VERSION_MAJOR 0
#define PRIDE_VERSION_MINOR 1
#define PRIDE_VERSION_PATCH 0

#endif
