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

#define PRIDE_VERSION_MAJOR 0 /**< major version: changes break the API or the ABI */
#define PRIDE_VERSION_MINOR 1 /**< minor version: additions */
#define PRIDE_VERSION_PATCH 0 /**< patch version: fixes */

#endif
